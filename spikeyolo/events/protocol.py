"""The official Prophesee evaluation protocol for automotive event data (Gen1 and 1 Mpx datasets).

What the Prophesee toolbox's evaluation does (``box_filtering.filter_boxes`` and
``coco_eval.evaluate_detection``), re-implemented on pycocotools:

* ground truth and detections are both filtered: boxes at timestamps up to ``skip_us`` (0.5 s)
  after the recording start are dropped (the detector has no history yet), and so are boxes whose
  diagonal is below ``min_diag`` px or whose width or height is below ``min_side`` px (Gen1: 30 and
  10; 1 Mpx: 60 and 20);
* every label timestamp with at least one ground-truth box left is one COCO image; a timestamp whose
  boxes were all filtered out is not scored at all (its detections count neither way);
* COCO mAP50:95 (pycocotools, 101-point interpolation, at most 100 detections per image) in sensor
  pixels, on the recording's own boxes (not clipped to the frame).

SpikeYOLO's paper numbers instead come from ultralytics' mAP over all converted boxes of the
letterboxed frames; :mod:`spikeyolo.engine.event_evaluation` reports both.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PropheseeProtocol", "GEN1_PROTOCOL", "ONE_MPX_PROTOCOL", "ScoredSample", "keep_boxes", "prophesee_map"]


@dataclass(frozen=True)
class PropheseeProtocol:
    """Filter settings: ``skip_us`` in µs from the recording start, ``min_diag`` and ``min_side`` in sensor pixels."""

    skip_us: int = 500_000
    min_diag: float = 30.0
    min_side: float = 10.0


GEN1_PROTOCOL = PropheseeProtocol()
ONE_MPX_PROTOCOL = PropheseeProtocol(min_diag=60.0, min_side=20.0)


@dataclass
class ScoredSample:
    """One label timestamp of one recording; boxes as x0, y0, x1, y1 in sensor pixels.

    Attributes:
        ts_us: label timestamp, µs since the recording start.
        gt_boxes, gt_cls: ground truth, ``[N, 4]`` float and ``[N]`` int class ids.
        boxes, scores, cls: detections, ``[M, 4]`` float, ``[M]`` float confidences and ``[M]`` int class ids.
    """

    ts_us: int
    gt_boxes: np.ndarray
    gt_cls: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    cls: np.ndarray


def keep_boxes(boxes: np.ndarray, protocol: PropheseeProtocol = GEN1_PROTOCOL) -> np.ndarray:
    """Mask of the boxes ``[N, 4]`` (x0, y0, x1, y1 pixels) large enough to be scored, shape [N] bool."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return (w * w + h * h >= protocol.min_diag**2) & (w >= protocol.min_side) & (h >= protocol.min_side)


def _coco_box(box: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def prophesee_map(
    samples: Sequence[ScoredSample], names: dict[int, str], sensor: tuple[int, int],
    protocol: PropheseeProtocol = GEN1_PROTOCOL,
) -> dict:
    """COCO mAP of the detections against the ground truth under ``protocol``.

    Args:
        samples: the scored timestamps (see :class:`ScoredSample`).
        names: class id → name.
        sensor: (height, width) in pixels, the COCO image size.

    Returns:
        ``{"mAP50-95", "mAP50", "mAP75", "samples", "gt_boxes", "detections"}``: the COCO averages
        (NaN when no ground-truth box survives the filter, 0 when there is no detection) and the
        numbers of images, ground-truth boxes and detections that were scored.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, detections = [], [], []
    for s in samples:
        if s.ts_us <= protocol.skip_us:
            continue
        gt = keep_boxes(s.gt_boxes, protocol)
        if not gt.any():
            continue
        image_id = len(images) + 1
        images.append({"id": image_id, "height": int(sensor[0]), "width": int(sensor[1])})
        for box, c in zip(s.gt_boxes[gt], s.gt_cls[gt]):
            coco = _coco_box(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(c) + 1,
                                "bbox": coco, "area": coco[2] * coco[3], "iscrowd": 0})
        dt = keep_boxes(s.boxes, protocol)
        for box, score, c in zip(s.boxes[dt], s.scores[dt], s.cls[dt]):
            detections.append({"image_id": image_id, "category_id": int(c) + 1, "bbox": _coco_box(box),
                               "score": float(score)})
    counts = {"samples": len(images), "gt_boxes": len(annotations), "detections": len(detections)}
    if not annotations:
        return {"mAP50-95": math.nan, "mAP50": math.nan, "mAP75": math.nan, **counts}
    if not detections:  # pycocotools cannot load an empty result list; nothing detected scores 0
        return {"mAP50-95": 0.0, "mAP50": 0.0, "mAP75": 0.0, **counts}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": int(k) + 1, "name": v} for k, v in names.items()]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(detections), "bbox")
        evaluation.params.imgIds = [im["id"] for im in images]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"mAP50-95": float(stats[0]), "mAP50": float(stats[1]), "mAP75": float(stats[2]), **counts}
