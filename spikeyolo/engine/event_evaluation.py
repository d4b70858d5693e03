"""Event-data evaluation under both protocols, side by side (``spikeyolo events evaluate``).

(a) SpikeYOLO (the paper's numbers): ultralytics' mAP50 / mAP50-95 over all converted boxes of the
    letterboxed frames (101-point interpolated AP), exactly what ``model.val`` reports.
(b) Prophesee (the event-camera literature's numbers): the official toolbox evaluation
    (:mod:`spikeyolo.events.protocol`, preset ``papers`` or ``toolbox``) of the same detections, mapped
    back to sensor pixels and time-stamped with their sample's label time, against every box of each
    validated recording (``OUT/boxes/<split>/<name>_bbox.npy``, saved by the conversion).

Both score the same detections (ultralytics' validation defaults: conf 0.001, NMS IoU 0.7, max_det
300). The result is printed as a table and written to ``<validation run>/protocols.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..events.config import read_data_yaml
from ..events.convert import source_boxes_file
from ..events.errors import EventFileError
from ..events.labels import read_boxes
from ..events.protocol import DETECTION_DTYPE, PAPERS_PROTOCOL, PropheseeProtocol, prophesee_map
from .event_validator import EventValidator, SampleRecord

__all__ = ["Evaluation", "evaluate", "recording_boxes", "format_table"]


@dataclass
class Evaluation:
    """Both protocols' results (``{"mAP50-95", "mAP50", "samples", "gt_boxes", "detections", ...}`` each);
    ``metrics`` is ultralytics' DetMetrics of the run, ``json_file`` where the results were written."""

    spikeyolo: dict
    prophesee: dict
    metrics: object = None
    json_file: Path | None = None
    records: list = field(default_factory=list)


def recording_boxes(records: Sequence[SampleRecord]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The validator's detections grouped by recording, with each recording's ground truth: the inputs of
    :func:`~spikeyolo.events.protocol.prophesee_map`.

    Returns:
        ``(ground_truth, detections)``, one entry per recording, in the order of the box files' paths
        (the toolbox's script sorts its files so): all of the recording's boxes as the conversion saved
        them, and its detections as :data:`DETECTION_DTYPE` rows sorted by ``t``, the label timestamp of
        the sample they were found in; ``w = x1 − x0`` and ``h`` in float32, as a detector writing the
        toolbox's box files computes them.

    Raises:
        EventFileError: a sample without a timestamp in its name, or whose recording's boxes are missing.
    """
    by_source: dict[Path, list[np.ndarray]] = {}
    for r in records:
        if r.ts_us is None:
            raise EventFileError(f"{r.file}: no label timestamp in the sample name (<recording>_<ts>.npy)")
        rows = np.empty(len(r.cls), dtype=DETECTION_DTYPE)
        boxes = np.asarray(r.boxes, dtype=np.float32)
        rows["t"], rows["class_id"], rows["class_confidence"] = r.ts_us, r.cls, r.scores
        rows["x"], rows["y"] = boxes[:, 0], boxes[:, 1]
        rows["w"], rows["h"] = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        by_source.setdefault(source_boxes_file(r.file), []).append(rows)
    ground_truth, detections = [], []
    for source in sorted(by_source, key=str):
        if not source.is_file():
            raise EventFileError(f"{source}: the recording's boxes are missing (needed by the Prophesee protocol); "
                                 "convert the dataset again")
        ground_truth.append(read_boxes(source))
        rows = np.concatenate(by_source[source])
        detections.append(rows[np.argsort(rows["t"], kind="stable")])
    return ground_truth, detections


def evaluate(model, data: str | Path, protocol: PropheseeProtocol = PAPERS_PROTOCOL, **val_args) -> Evaluation:
    """Validate ``model`` (a :class:`~spikeyolo.SpikeYOLO`) on event data ``data`` under both protocols.

    ``protocol`` is the Prophesee preset (``PROTOCOLS`` of :mod:`spikeyolo.events.protocol`); ``val_args``
    go to ``model.val`` (imgsz, batch, split, project, name ...).
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
    theirs = {**prophesee_map(*recording_boxes(records), names, sensor, protocol), "protocol": asdict(protocol)}
    json_file = Path(metrics.save_dir) / "protocols.json"
    json_file.parent.mkdir(parents=True, exist_ok=True)
    json_file.write_text(json.dumps({"spikeyolo": ours, "prophesee": theirs}, indent=2))
    return Evaluation(ours, theirs, metrics, json_file, records)


def format_table(result: Evaluation) -> str:
    """Both protocols as a two-row table."""
    lines = [f"{'protocol':<50}{'mAP50':>8}{'mAP50-95':>10}{'samples':>9}{'GT boxes':>10}"]
    preset = result.prophesee["protocol"]["name"]
    for title, r in (("SpikeYOLO (ultralytics, letterboxed, all boxes)", result.spikeyolo),
                     (f"Prophesee (COCO, official toolbox, {preset} preset)", result.prophesee)):
        lines.append(f"{title:<50}{r['mAP50']:>8.4f}{r['mAP50-95']:>10.4f}{r['samples']:>9}{r['gt_boxes']:>10}")
    return "\n".join(lines)
