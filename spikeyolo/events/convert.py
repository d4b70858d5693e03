"""Raw Gen1 recordings → a frame dataset that ultralytics trains on (``spikeyolo events convert``).

Input: ``RAW/<split>/<name>_td.dat`` with ``RAW/<split>/<name>_bbox.npy`` (the Gen1 download's
layout; splits train, val, test). Output, one sample per distinct label timestamp ``ts`` (µs)::

    OUT/images/<split>/<name>_<ts>.npy   uint8 [T, C_stored, H, W], oldest bin first
    OUT/labels/<split>/<name>_<ts>.txt   YOLO rows "class cx cy w h" (normalised; empty: no boxes)
    OUT/boxes/<split>/<name>_bbox.npy    the recording's boxes as read (the Prophesee protocol scores these)
    OUT/.done/<split>/<name>.json        written last: this recording is finished
    OUT/conversion.json                  the settings; a later run with other settings is refused
    OUT/data.yaml                        dataset YAML (the packaged gen1.yaml with path and events set)

Recordings are converted in parallel worker processes, each reading its ``.dat`` through a memory
map one window at a time. The run is resumable: finished recordings are skipped, an interrupted one
is redone. The time order (``events.time_order``) is applied when samples are loaded, so switching
it in ``data.yaml`` needs no new conversion.

Bad input never stops a run nor loses what is converted: a bad recording (see :class:`EventFileError`:
damaged files, values out of their field's range, a class the dataset lacks, a header size other than
the template's ``events.sensor``) is skipped, with the file and the field named, and listed at the
end; so is any unexpected failure of one recording, whose partly written samples are removed. A
label timestamp with no event in the window before it (a box after the recording's end, say) gets
no sample; the report counts such timestamps per recording. Its boxes stay in ``boxes/``: the
Prophesee protocol, like the official evaluation, scores every label timestamp of the recording.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml
from ultralytics.utils import TQDM

from .config import GEN1_YAML, read_data_yaml
from .dat import GEN1_SENSOR, DatFile
from .errors import EventFileError
from .labels import LABEL_RULES, check_boxes_on_sensor, read_boxes, write_boxes, yolo_rows
from .representation import EventRepresentation

__all__ = ["ConversionReport", "RecordingResult", "find_recordings", "convert_recording", "convert_dataset",
           "source_boxes_file"]

SPLITS = ("train", "val", "test")
_GEN1_NAMES = {0: "car", 1: "pedestrian"}
_DAT, _BOX = "_td.dat", "_bbox.npy"


@dataclass
class ConversionReport:
    """What a conversion did: counts, the skipped files with their reasons, and the dataset YAML."""

    data_yaml: Path
    converted: int = 0  # recordings converted by this run
    reused: int = 0  # recordings finished by an earlier run
    samples: int = 0  # samples written by this run
    events: int = 0  # events read by this run
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    without_events: list[tuple[str, list[int]]] = field(default_factory=list)  # ("split/name", label timestamps µs)


def find_recordings(raw: Path, splits: tuple[str, ...]) -> tuple[list[tuple[str, str, Path, Path]], list[tuple[str, str]]]:
    """Pair ``*_td.dat`` with ``*_bbox.npy`` per split: ``([(split, name, dat, boxes)], [(unpaired file, reason)])``."""
    pairs, unpaired = [], []
    for split in splits:
        folder = raw / split
        dats = {p.name[: -len(_DAT)]: p for p in folder.glob(f"*{_DAT}")}
        boxes = {p.name[: -len(_BOX)]: p for p in folder.glob(f"*{_BOX}")}
        for name in sorted(dats.keys() | boxes.keys()):
            if name not in boxes:
                unpaired.append((str(dats[name]), f"has no label file {name}{_BOX} next to it"))
            elif name not in dats:
                unpaired.append((str(boxes[name]), f"has no event file {name}{_DAT} next to it"))
            else:
                pairs.append((split, name, dats[name], boxes[name]))
    return pairs, unpaired


@dataclass
class RecordingResult:
    """What converting one recording gave: samples written, events read, and the label timestamps (µs)
    skipped because no event lies in the window before them (a box after the recording's end, say)."""

    samples: int
    events: int
    without_events: list[int]


def convert_recording(split: str, name: str, dat_path: Path, box_path: Path, out: Path, settings: dict,
                      classes: int) -> RecordingResult:
    """Convert one recording into ``out`` (see the module docstring).

    Everything is checked before the first sample is written. On any failure this recording's samples
    are removed, those of an earlier, killed run included, so a recording is either finished (its
    ``.done`` marker) or absent: training never sees half a recording.

    Args:
        settings: the conversion settings (``representation``, ``labels``, ``sensor`` as [height, width]).
        classes: the dataset's number of classes; every ``class_id`` must lie in ``0 … classes − 1``.

    Raises:
        EventFileError: a bad or empty recording or label file, a sensor other than the dataset's, a
            class the dataset does not have, or no label timestamp with events before it.
    """
    try:
        return _convert(split, name, dat_path, box_path, out, settings, classes)
    except BaseException:
        for folder, suffix in (("images", "npy"), ("labels", "txt")):
            for path in (out / folder / split).glob(f"{glob.escape(name)}_{'[0-9]' * 12}.{suffix}"):
                path.unlink(missing_ok=True)
        (out / "boxes" / split / f"{name}{_BOX}").unlink(missing_ok=True)
        raise


def _convert(split: str, name: str, dat_path: Path, box_path: Path, out: Path, settings: dict,
             classes: int) -> RecordingResult:
    representation = EventRepresentation(**settings["representation"])
    dat = DatFile(dat_path)
    _check_sensor(dat, tuple(settings["sensor"]))
    if len(dat) == 0:
        raise EventFileError(f"{dat_path}: empty recording, no events")
    boxes = read_boxes(box_path)
    if len(boxes) == 0:
        raise EventFileError(f"{box_path}: no boxes, so no samples to make")
    check_boxes_on_sensor(boxes, dat.height, dat.width, box_path)
    unknown = boxes["class_id"] >= classes
    if unknown.any():
        i = int(np.argmax(unknown))
        raise EventFileError(f"{box_path}: field 'class_id' of box {i} (t={boxes['t'][i]} µs) is {boxes['class_id'][i]}, "
                             f"not a class of the dataset (its names give classes 0 … {classes - 1})")
    stamps, starts = np.unique(boxes["t"], return_index=True)
    ends = [*starts[1:], len(boxes)]
    edges = [representation.bin_edges(int(ts)) for ts in stamps]
    counts = [dat.index(int(e[-1])) - dat.index(int(e[0])) for e in edges]  # binary searches: nothing read yet
    without_events = [int(ts) for ts, n in zip(stamps, counts) if n == 0]
    if len(without_events) == len(stamps):
        raise EventFileError(
            f"{box_path}: none of the {len(stamps)} label timestamps ({stamps[0]} … {stamps[-1]} µs) has events in the "
            f"{representation.window_us} µs before it; the events of {dat_path.name} end at {dat.duration_us} µs"
        )
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for ts, lo, hi, e, n in zip(stamps, starts, ends, edges, counts):
        if n == 0:
            continue
        stem = f"{name}_{int(ts):012d}"
        np.save(images / f"{stem}.npy", representation.frames(dat.window(int(e[0]), int(e[-1])), int(ts), dat.height, dat.width))
        rows = yolo_rows(boxes[lo:hi], dat.height, dat.width, settings["labels"])
        (labels / f"{stem}.txt").write_text("".join(f"{int(r[0])} {r[1]:.18e} {r[2]:.18e} {r[3]:.18e} {r[4]:.18e}\n" for r in rows))
    write_boxes(out / "boxes" / split / f"{name}{_BOX}", boxes)
    result = RecordingResult(len(stamps) - len(without_events), int(sum(counts)), without_events)
    done = out / ".done" / split / f"{name}.json"
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps({**asdict(result), "sensor": [dat.height, dat.width]}))
    return result


def _check_sensor(dat: DatFile, sensor: tuple[int, int]) -> None:
    """Refuse a recording whose header size differs from the dataset's ``sensor`` (height, width): its frames
    would not match the others, nor ``data.yaml``'s ``events.sensor``."""
    wrong = [f"'{key}' is {dat.header.get(key, f'absent (so Gen1 {found})')}"
             for key, found, expected in (("Height", dat.height, sensor[0]), ("Width", dat.width, sensor[1]))
             if found != expected]
    if wrong:
        raise EventFileError(
            f"{dat.path}: header field {' and '.join(wrong)}, but the dataset's sensor is {sensor[0]} high and "
            f"{sensor[1]} wide (events.sensor of the config template); convert recordings of another sensor "
            "separately, with a template whose events.sensor is theirs"
        )


def _worker(job: tuple) -> tuple[str, str, RecordingResult | None, str | None]:
    split, name, dat_path, box_path, out, settings, classes = job
    try:
        return split, name, convert_recording(split, name, dat_path, box_path, out, settings, classes), None
    except EventFileError as e:
        return split, name, None, str(e)
    except Exception as e:  # noqa: BLE001 - one bad recording must never stop the others; it is listed with its cause
        return split, name, None, f"{dat_path} with {box_path.name}: unexpected {type(e).__name__}: {e}"


def convert_dataset(
    raw: str | Path,
    out: str | Path,
    config: str | Path | dict = GEN1_YAML,
    representation: EventRepresentation | None = None,
    label_rule: str | None = None,
    splits: tuple[str, ...] | None = None,
    val_split: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ConversionReport:
    """Convert the recordings under ``raw`` into a dataset at ``out``; returns a :class:`ConversionReport`.

    Args:
        config: the dataset YAML template (its ``names``, ``events`` and ``hyp``); default Gen1's.
        representation, label_rule: override the template's ``events`` settings.
        splits: splits to convert (default: those of train, val, test present under ``raw``).
        val_split: the split ``data.yaml`` validates on: default ``test`` as in the reference, else ``val``.
        workers: worker processes (default: CPU count, at most the number of recordings).
        overwrite: convert everything again, replacing what an earlier conversion wrote into ``out``.

    Raises:
        FileNotFoundError: ``raw`` has no split folder with recordings.
        FileExistsError: ``out`` holds a conversion with other settings, or other files, and not ``overwrite``.
    """
    started = time.perf_counter()
    raw, out = Path(raw).expanduser().resolve(), Path(out).expanduser().resolve()
    template = dict(read_data_yaml(config))
    events = dict(template.get("events") or {})
    rep = representation or EventRepresentation(**{k: v for k, v in events.items() if k in EventRepresentation.__dataclass_fields__})
    rule = label_rule or events.get("labels", "reference")
    if rule not in LABEL_RULES:
        raise ValueError(f"label rule '{rule}' is not one of {LABEL_RULES}")
    splits = tuple(splits or [s for s in SPLITS if (raw / s).is_dir()])
    pairs, unpaired = find_recordings(raw, splits)
    if not pairs and not unpaired:
        raise FileNotFoundError(f"no recordings (*{_DAT} with *{_BOX}) under {raw}/{{{','.join(splits or SPLITS)}}}")

    sensor = events.get("sensor", list(GEN1_SENSOR))
    if not (isinstance(sensor, (list, tuple)) and len(sensor) == 2 and all(isinstance(v, int) and v > 0 for v in sensor)):
        raise ValueError(f"{config if not isinstance(config, dict) else 'the config'}: events.sensor is {sensor!r}, "
                         "not [height, width] in pixels")
    # time_order only matters when samples are read: not a conversion setting (stored frames are oldest first)
    stored = {k: v for k, v in rep.to_dict().items() if k != "time_order"}
    settings = {"representation": stored, "labels": rule, "sensor": list(sensor)}
    classes = len(template.get("names") or _GEN1_NAMES)
    record = out / "conversion.json"
    previous = json.loads(record.read_text()) if record.is_file() else None
    foreign = previous is None and out.is_dir() and any(out.iterdir())
    if overwrite:
        for sub in ("images", "labels", "boxes", ".done", "conversion.json", "data.yaml"):
            target = out / sub
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    elif foreign or previous not in (None, settings):
        raise FileExistsError(
            f"{out} already holds {'other files' if foreign else 'a conversion with other settings'}; "
            "choose another folder or pass overwrite (--overwrite) to convert again"
        )
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(settings, indent=2))

    report = ConversionReport(data_yaml=out / "data.yaml", skipped=list(unpaired))
    todo = [p for p in pairs if not (out / ".done" / p[0] / f"{p[1]}.json").is_file()]
    report.reused = len(pairs) - len(todo)
    jobs = [(split, name, dat, box, out, settings, classes) for split, name, dat, box in todo]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    bar = TQDM(total=len(jobs), desc="converting recordings", disable=not progress)
    with multiprocessing.Pool(n_workers) if n_workers > 1 else _InProcess() as pool:
        for split, name, result, error in pool.imap_unordered(_worker, jobs):
            if error:
                report.skipped.append((f"{split}/{name}", error))
            else:
                report.converted += 1
                report.samples += result.samples
                report.events += result.events
                if result.without_events:
                    report.without_events.append((f"{split}/{name}", result.without_events))
            bar.update()
    bar.close()
    report.skipped.sort()
    report.without_events.sort()

    present = [s for s in splits if (out / ".done" / s).is_dir()]
    val = val_split or next((s for s in ("test", "val") if s in present), "train")
    data = {
        "path": str(out),
        "train": "images/train",
        "val": f"images/{val}",
        **({"test": "images/test"} if "test" in present else {}),
        "names": template.get("names") or _GEN1_NAMES,
        "channels": 3,
        "events": {**rep.to_dict(), "labels": rule, "sensor": list(sensor)},
        **({"hyp": template["hyp"]} if template.get("hyp") else {}),
    }
    report.data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    report.seconds = time.perf_counter() - started
    return report


def source_boxes_file(sample: str | Path) -> Path:
    """The recording's box file saved by the conversion for a sample ``OUT/images/<split>/<name>_<ts>.npy``."""
    sample = Path(sample)
    name = sample.stem.rsplit("_", 1)[0]
    return sample.parents[2] / "boxes" / sample.parent.name / f"{name}{_BOX}"


class _InProcess:
    """The Pool interface, run in this process (one worker: no spawn cost, easier debugging)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap_unordered(function, jobs):
        return map(function, jobs)
