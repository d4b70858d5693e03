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
it in ``data.yaml`` needs no new conversion. A bad recording (see :class:`EventFileError`) is skipped with its reason, the run goes
on, and the skipped files are listed at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from ultralytics.utils import TQDM

from .config import GEN1_YAML, read_data_yaml
from .dat import DatFile
from .errors import EventFileError
from .labels import LABEL_RULES, check_boxes_on_sensor, read_boxes, write_boxes, yolo_rows
from .representation import EventRepresentation

__all__ = ["ConversionReport", "find_recordings", "convert_recording", "convert_dataset", "source_boxes_file"]

SPLITS = ("train", "val", "test")
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


def convert_recording(split: str, name: str, dat_path: Path, box_path: Path, out: Path, settings: dict) -> tuple[int, int]:
    """Convert one recording into ``out`` (see the module docstring); returns ``(samples, events read)``.

    Raises:
        EventFileError: a bad or empty recording or label file (nothing is marked finished).
    """
    representation = EventRepresentation(**settings["representation"])
    dat = DatFile(dat_path)
    if len(dat) == 0:
        raise EventFileError(f"{dat_path}: empty recording, no events")
    boxes = read_boxes(box_path)
    if len(boxes) == 0:
        raise EventFileError(f"{box_path}: no boxes, so no samples to make")
    check_boxes_on_sensor(boxes, dat.height, dat.width, box_path)
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    stamps, starts = np.unique(boxes["t"], return_index=True)
    n_events = 0
    for ts, lo, hi in zip(stamps, starts, [*starts[1:], len(boxes)]):
        edges = representation.bin_edges(int(ts))
        window = dat.window(int(edges[0]), int(edges[-1]))
        n_events += len(window)
        stem = f"{name}_{int(ts):012d}"
        np.save(images / f"{stem}.npy", representation.frames(window, int(ts), dat.height, dat.width))
        rows = yolo_rows(boxes[lo:hi], dat.height, dat.width, settings["labels"])
        (labels / f"{stem}.txt").write_text("".join(f"{int(r[0])} {r[1]:.18e} {r[2]:.18e} {r[3]:.18e} {r[4]:.18e}\n" for r in rows))
    write_boxes(out / "boxes" / split / f"{name}{_BOX}", boxes)
    done = out / ".done" / split / f"{name}.json"
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps({"samples": len(stamps), "events": n_events, "sensor": [dat.height, dat.width]}))
    return len(stamps), n_events


def _worker(job: tuple) -> tuple[str, str, int, int, str | None]:
    split, name, dat_path, box_path, out, settings = job
    try:
        samples, events = convert_recording(split, name, dat_path, box_path, out, settings)
        return split, name, samples, events, None
    except EventFileError as e:
        return split, name, 0, 0, str(e)


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

    # time_order only matters when samples are read: not a conversion setting (stored frames are oldest first)
    stored = {k: v for k, v in rep.to_dict().items() if k != "time_order"}
    settings = {"representation": stored, "labels": rule}
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
    jobs = [(split, name, dat, box, out, settings) for split, name, dat, box in todo]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    bar = TQDM(total=len(jobs), desc="converting recordings", disable=not progress)
    with multiprocessing.Pool(n_workers) if n_workers > 1 else _InProcess() as pool:
        for split, name, samples, n_events, error in pool.imap_unordered(_worker, jobs):
            if error:
                report.skipped.append((f"{split}/{name}", error))
            else:
                report.converted += 1
                report.samples += samples
                report.events += n_events
            bar.update()
    bar.close()

    finished = sorted((out / ".done").glob("*/*.json"))
    sensor = json.loads(finished[0].read_text())["sensor"] if finished else list(events.get("sensor", [240, 304]))
    present = [s for s in splits if (out / ".done" / s).is_dir()]
    val = val_split or next((s for s in ("test", "val") if s in present), "train")
    data = {
        "path": str(out),
        "train": "images/train",
        "val": f"images/{val}",
        **({"test": "images/test"} if "test" in present else {}),
        "names": template.get("names", {0: "car", 1: "pedestrian"}),
        "channels": 3,
        "events": {**rep.to_dict(), "labels": rule, "sensor": sensor},
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
