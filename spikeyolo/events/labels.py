"""Gen1 box labels: ``*_bbox.npy`` reading and writing, and their conversion to YOLO rows.

A label file is a NumPy structured array, one row per box and timestamp: ``t`` (µs; ``ts`` in
older files), ``x, y, w, h`` (float32 pixels, top-left corner and size), ``class_id`` (0 car,
1 pedestrian), ``class_confidence`` (``confidence`` in older files) and ``track_id``. Both
namings are read; rows come back under the new names, sorted by time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

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

    Raises:
        EventFileError: missing file, not a ``.npy`` array, missing fields, or impossible boxes
            (non-finite values, negative size); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise EventFileError(f"{path}: label file not found")
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise EventFileError(f"{path}: not a readable .npy label array ({e})") from None
    names = raw.dtype.names or ()
    boxes = np.empty(raw.shape[0] if raw.ndim else 0, dtype=BOX_DTYPE)
    missing = []
    for field in BOX_DTYPE.names:
        source = field if field in names else _OLD_NAMES.get(field)
        if source in names:
            boxes[field] = raw[source]
        elif field == "class_confidence":
            boxes[field] = 1.0  # optional: ground truth is certain
        else:
            missing.append(field if field not in _OLD_NAMES else f"{field}/{_OLD_NAMES[field]}")
    if raw.ndim != 1 or missing:
        raise EventFileError(f"{path}: not a Gen1 box array (fields {list(names)}, shape {raw.shape}; missing {missing})")
    geometry = np.stack([boxes[k] for k in ("x", "y", "w", "h")], axis=1)
    bad = ~np.isfinite(geometry).all(axis=1) | (boxes["w"] < 0) | (boxes["h"] < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise EventFileError(f"{path}: box {i} at t={boxes['t'][i]} µs is invalid (x, y, w, h = {geometry[i].tolist()})")
    return boxes[np.argsort(boxes["t"], kind="stable")]


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
    """Write BOX_DTYPE rows as a ``_bbox.npy`` file (``old_names``: ``ts``/``confidence``), atomically."""
    path = Path(path)
    dtype = BOX_DTYPE
    if old_names:
        dtype = np.dtype([(_OLD_NAMES.get(n, n), BOX_DTYPE[n]) for n in BOX_DTYPE.names])
    out = np.empty(len(boxes), dtype=dtype)
    for new, old in zip(BOX_DTYPE.names, dtype.names):
        out[old] = boxes[new]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npy", dir=path.parent)
    os.close(fd)
    try:
        np.save(tmp, out, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
