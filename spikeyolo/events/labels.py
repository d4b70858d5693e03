"""Gen1 box labels: ``*_bbox.npy`` reading and writing, and their conversion to YOLO rows.

A label file is a NumPy structured array, one row per box and timestamp: ``t`` (µs; ``ts`` in
older files), ``x, y, w, h`` (float32 pixels, top-left corner and size), ``class_id`` (0 car,
1 pedestrian), ``class_confidence`` (``confidence`` in older files) and ``track_id``. Both
namings are read; rows come back under the new names, sorted by time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_file
from .errors import EventFileError

__all__ = ["BOX_DTYPE", "LABEL_RULES", "read_boxes", "write_boxes", "check_boxes_on_sensor", "yolo_rows"]

BOX_DTYPE = np.dtype(
    [("t", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
     ("class_id", "u1"), ("class_confidence", "<f4"), ("track_id", "<u4")]
)
_OLD_NAMES = {"t": "ts", "class_confidence": "confidence"}
LABEL_RULES = ("reference", "clip")


def read_boxes(path: str | Path) -> np.ndarray:
    """Read a ``_bbox.npy`` file into BOX_DTYPE rows, shape [N], stably sorted by ``t`` (µs).

    Every value must fit its BOX_DTYPE field as it is: a ``t`` of -1 or a ``class_id`` of 300 (both
    possible in the toolbox's own dtype, i8 and u4) is refused, never wrapped into 2**64 − 1 or 44.

    Raises:
        EventFileError: missing file, not a ``.npy`` array, not one row per box (1-D), missing or
            non-numeric fields, values out of their field's range (negative, too large, not whole,
            non-finite) or a negative size; the message names the file, the field and the first bad box.
    """
    path = Path(path)
    if not path.is_file():
        raise EventFileError(f"{path}: label file not found")
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise EventFileError(f"{path}: not a readable .npy label array ({e})") from None
    names = raw.dtype.names or ()
    if raw.ndim != 1 or not names:
        kind = "structured" if names else f"plain {raw.dtype}"
        raise EventFileError(f"{path}: not a Gen1 box array: a {kind} array of shape {raw.shape}; "
                             "a box file holds one row per box (a 1-D structured array)")
    sources = {field: field if field in names else _OLD_NAMES.get(field) for field in BOX_DTYPE.names}
    missing = [f if f not in _OLD_NAMES else f"{f}/{_OLD_NAMES[f]}" for f, s in sources.items()
               if s not in names and f != "class_confidence"]
    if missing:
        raise EventFileError(f"{path}: not a Gen1 box array: missing field(s) {missing} (fields {list(names)})")
    boxes = np.empty(len(raw), dtype=BOX_DTYPE)
    boxes["class_confidence"] = 1.0  # optional: ground truth is certain
    for field, source in sources.items():  # "t" comes first: the later messages give each bad box's time
        if source in names:
            times = boxes["t"] if field != "t" else None
            boxes[field] = _checked_column(path, raw[source], source, BOX_DTYPE[field], times)
    for field in ("w", "h"):
        negative = boxes[field] < 0
        if negative.any():
            i = int(np.argmax(negative))
            raise EventFileError(f"{path}: field '{field}' of box {i} (t={boxes['t'][i]} µs) is {boxes[field][i]}, "
                                 "a negative size")
    return boxes[np.argsort(boxes["t"], kind="stable")]


def _checked_column(path: Path, values: np.ndarray, name: str, target: np.dtype, times: np.ndarray | None) -> np.ndarray:
    """``values`` cast to ``target`` after checking that every one fits it exactly (see :func:`read_boxes`)."""
    if values.dtype.kind not in "iuf":
        raise EventFileError(f"{path}: field '{name}' holds {values.dtype} values, not numbers")
    if target.kind in "iu":
        info = np.iinfo(target)
        bad = (values < info.min) | (values > info.max)
        rule = f"a whole number in {info.min} … {info.max}"
        if values.dtype.kind == "f":
            bad |= ~np.isfinite(values) | (np.floor(values) != values)
    else:
        with np.errstate(over="ignore"):  # a float64 too large for float32 becomes inf, refused below
            bad = ~np.isfinite(values.astype(target))
        rule = f"a finite {target} number"
    if bad.any():
        i = int(np.argmax(bad))
        at = f" (t={times[i]} µs)" if times is not None else ""
        raise EventFileError(f"{path}: field '{name}' of box {i}{at} is {values[i]}, not {rule}; "
                             f"{int(bad.sum())} box(es) have such values")
    return values.astype(target)


def check_boxes_on_sensor(boxes: np.ndarray, height: int, width: int, path: str | Path) -> None:
    """Refuse boxes that lie entirely outside the ``width × height`` sensor (partly outside is normal).

    Raises:
        EventFileError: naming ``path``, the first such box and how many there are.
    """
    outside = (boxes["x"] >= width) | (boxes["y"] >= height) | (boxes["x"] + boxes["w"] <= 0) | (boxes["y"] + boxes["h"] <= 0)
    if outside.any():
        i = int(np.argmax(outside))
        b = boxes[i]
        raise EventFileError(
            f"{path}: {int(outside.sum())} box(es) lie entirely outside the {width}×{height} sensor, the first at "
            f"t={b['t']} µs: x={b['x']}, y={b['y']}, w={b['w']}, h={b['h']}"
        )


def write_boxes(path: str | Path, boxes: np.ndarray, old_names: bool = False) -> Path:
    """Write BOX_DTYPE rows as a ``_bbox.npy`` file (``old_names``: ``ts``/``confidence``), atomically, mode from the umask."""
    path = Path(path)
    dtype = BOX_DTYPE
    if old_names:
        dtype = np.dtype([(_OLD_NAMES.get(n, n), BOX_DTYPE[n]) for n in BOX_DTYPE.names])
    out = np.empty(len(boxes), dtype=dtype)
    for new, old in zip(BOX_DTYPE.names, dtype.names):
        out[old] = boxes[new]
    with atomic_file(path) as f:
        np.save(f, out, allow_pickle=False)
    return path


def yolo_rows(boxes: np.ndarray, height: int, width: int, rule: str = "reference") -> np.ndarray:
    """The boxes of one timestamp as YOLO rows ``class cx cy w h`` (normalised), shape [M, 5] float64.

    Args:
        boxes: BOX_DTYPE rows of one timestamp, shape [N].
        height, width: sensor size in pixels.
        rule: ``"reference"`` reproduces the reference converter (``pre_gen1.py``): keep each
            track's last row, clamp x, w to [0, W] and y, h to [0, H] column by column (a box
            sticking out left or top is shifted, not cut), take the centre, clamp again, drop
            empty boxes. ``"clip"`` keeps each track's last row and intersects it with the frame.
            Unlike the reference, any number of boxes (zero included) works.
    """
    if rule not in LABEL_RULES:
        raise ValueError(f"label rule '{rule}' is not one of {LABEL_RULES}")
    # np.unique on the reversed ids finds each track's last row; sorting the indices restores file order.
    reversed_first = np.unique(boxes["track_id"][::-1], return_index=True)[1]
    kept = boxes[np.sort(len(boxes) - 1 - reversed_first)]
    x, y, w, h = (kept[k].astype(np.float64) for k in ("x", "y", "w", "h"))
    if rule == "reference":
        x, w, y, h = np.clip(x, 0, width), np.clip(w, 0, width), np.clip(y, 0, height), np.clip(h, 0, height)
        cx, cy = np.clip(x + w / 2, 0, width), np.clip(y + h / 2, 0, height)
    else:
        x0, x1 = np.clip(x, 0, width), np.clip(x + w, 0, width)
        y0, y1 = np.clip(y, 0, height), np.clip(y + h, 0, height)
        w, h, cx, cy = x1 - x0, y1 - y0, (x0 + x1) / 2, (y0 + y1) / 2
    rows = np.stack([kept["class_id"].astype(np.float64), cx / width, cy / height, w / width, h / height], axis=1)
    return rows[(w > 0) & (h > 0)]
