"""Event-data evaluation under both protocols, side by side (``spikeyolo events evaluate``).

(a) SpikeYOLO (the paper's numbers): ultralytics' mAP50 / mAP50-95 over all converted boxes of the
    letterboxed frames (101-point interpolated AP), exactly what ``model.val`` reports.
(b) Prophesee (the event-camera literature's numbers): the same detections, mapped back to the
    sensor frame, scored against the recordings' own boxes after the protocol's filters with COCO
    mAP (:mod:`spikeyolo.events.protocol`).

Both score the same detections (ultralytics' validation defaults: conf 0.001, NMS IoU 0.7, max_det
300). The result is printed as a table and written to ``<validation run>/protocols.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..events.config import read_data_yaml
from ..events.convert import source_boxes_file
from ..events.errors import EventFileError
from ..events.labels import read_boxes
from ..events.protocol import GEN1_PROTOCOL, ONE_MPX_PROTOCOL, PropheseeProtocol, ScoredSample, prophesee_map
from .event_validator import EventValidator, SampleRecord

__all__ = ["PROTOCOLS", "Evaluation", "evaluate", "scored_samples", "format_table"]

PROTOCOLS = {"gen1": GEN1_PROTOCOL, "1mpx": ONE_MPX_PROTOCOL}


@dataclass
class Evaluation:
    """Both protocols' results (``{"mAP50-95", "mAP50", "samples", "gt_boxes", "detections", ...}`` each);
    ``metrics`` is ultralytics' DetMetrics of the run, ``json_file`` where the results were written."""

    spikeyolo: dict
    prophesee: dict
    metrics: object = None
    json_file: Path | None = None
    records: list = field(default_factory=list)


def scored_samples(records: Sequence[SampleRecord]) -> list[ScoredSample]:
    """The validator's detections joined with the recordings' own boxes at each sample's timestamp.

    The boxes come from ``OUT/boxes/<split>/<name>_bbox.npy``, saved by the conversion.

    Raises:
        EventFileError: a sample without a timestamp in its name, or whose recording's boxes are missing.
    """
    by_file: dict[Path, np.ndarray] = {}
    samples = []
    for r in records:
        if r.ts_us is None:
            raise EventFileError(f"{r.file}: no label timestamp in the sample name (<recording>_<ts>.npy)")
        source = source_boxes_file(r.file)
        if source not in by_file:
            if not source.is_file():
                raise EventFileError(f"{source}: the recording's boxes are missing (needed by the Prophesee protocol); "
                                     "convert the dataset again")
            by_file[source] = read_boxes(source)
        boxes = by_file[source][by_file[source]["t"] == r.ts_us]
        x, y, w, h = (boxes[k].astype(np.float64) for k in ("x", "y", "w", "h"))
        samples.append(ScoredSample(r.ts_us, np.stack([x, y, x + w, y + h], axis=1), boxes["class_id"].astype(int),
                                    r.boxes, r.scores, r.cls))
    return samples


def evaluate(model, data: str | Path, protocol: PropheseeProtocol = GEN1_PROTOCOL, **val_args) -> Evaluation:
    """Validate ``model`` (a :class:`~spikeyolo.SpikeYOLO`) on event data ``data`` under both protocols.

    ``val_args`` go to ``model.val`` (imgsz, batch, split, project, name ...).
    """
    validators = []

    def make_validator(**kwargs) -> EventValidator:
        validators.append(EventValidator(**kwargs))
        return validators[-1]

    metrics = model.val(data=str(data), validator=make_validator, **val_args)
    records = validators[-1].records
    names = {int(k): v for k, v in metrics.names.items()}
    ours = {"mAP50-95": float(metrics.box.map), "mAP50": float(metrics.box.map50), "mAP75": float(metrics.box.map75),
            "samples": len(records), "gt_boxes": int(metrics.nt_per_class.sum()),
            "detections": sum(len(r.cls) for r in records)}
    sensor = tuple(read_data_yaml(data)["events"].get("sensor", (240, 304)))
    theirs = prophesee_map(scored_samples(records), names, sensor, protocol)
    json_file = Path(metrics.save_dir) / "protocols.json"
    json_file.parent.mkdir(parents=True, exist_ok=True)
    json_file.write_text(json.dumps({"spikeyolo": ours, "prophesee": {**theirs, "protocol": protocol.__dict__}}, indent=2))
    return Evaluation(ours, theirs, metrics, json_file, records)


def format_table(result: Evaluation) -> str:
    """Both protocols as a two-row table."""
    lines = [f"{'protocol':<50}{'mAP50':>8}{'mAP50-95':>10}{'samples':>9}{'GT boxes':>10}"]
    for title, r in (("SpikeYOLO (ultralytics, letterboxed, all boxes)", result.spikeyolo),
                     ("Prophesee (COCO, sensor frame, filtered)", result.prophesee)):
        lines.append(f"{title:<50}{r['mAP50']:>8.4f}{r['mAP50-95']:>10.4f}{r['samples']:>9}{r['gt_boxes']:>10}")
    return "\n".join(lines)
