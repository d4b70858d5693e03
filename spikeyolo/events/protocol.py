"""The official Prophesee evaluation of automotive event data, reproduced exactly on pycocotools.

What the prophesee-automotive-dataset-toolbox does (``src/io/box_filtering.filter_boxes``, then
``src/metrics/coco_eval.evaluate_detection``), done here the same way, one recording at a time:

1. Filter ground truth and detections alike: a box is kept when ``t > skip_us`` (strictly, µs from
   the recording start), ``w² + h² ≥ min_diag²``, ``w ≥ min_side`` and ``h ≥ min_side``, computed in
   float32, the dtype of the box files. The dtype decides boxes at the cut-off: a 21.213203 px square
   has ``w² + h²`` = 900.0 exactly in float32 and is kept at diagonal 30; float64 gives 899.9999995.
2. Every distinct ground-truth timestamp ``ts`` left is one COCO image. Its ground truth is the boxes
   at ``ts``; its detections are all the recording's detections with ``ts − time_tol ≤ t ≤ ts + time_tol``
   (50 ms), so with labels closer than 100 ms one detection counts in several images: a hit in one,
   a false positive in the next. A timestamp whose boxes were all filtered out is not an image.
3. COCO bbox evaluation with pycocotools' defaults (IoU 0.50:0.05:0.95, 101 recall points, 100
   detections per image, the mean over the classes that have ground truth). Images are numbered
   recording by recording and, within one, by time; detections keep their time order. pycocotools
   breaks score ties by that order (a stable sort), so it is part of the protocol.

Two settings of the filter are in use, both for Gen1 (304 × 240):

* ``papers`` (default): skip 0.5 s, diagonal ≥ 30, side ≥ 10 px: the setting most Gen1 papers
  report (the toolbox README's 0.5 s rule from Perot et al. 2020, with Gen1's 30 px diagonal).
* ``toolbox``: skip 0.1 s, diagonal ≥ 30, side ≥ 20 px: what the toolbox's script
  ``psee_evaluator.py --camera GEN1`` applies.

Where the toolbox crashes (no detection left to score), this scores 0; with no ground truth left, NaN.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PropheseeProtocol", "PAPERS_PROTOCOL", "TOOLBOX_PROTOCOL", "PROTOCOLS", "DETECTION_DTYPE", "keep_boxes",
           "prophesee_map"]

# The toolbox's box dtype (t i8, class_id u4) without track_id: what a detector writes for it.
DETECTION_DTYPE = np.dtype([("t", "<i8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                            ("class_id", "<u4"), ("class_confidence", "<f4")])


@dataclass(frozen=True)
class PropheseeProtocol:
    """A named filter setting: ``skip_us`` and ``time_tol_us`` in µs, ``min_diag`` and ``min_side`` in sensor pixels."""

    name: str
    skip_us: int
    min_diag: float
    min_side: float
    time_tol_us: int = 50_000


PAPERS_PROTOCOL = PropheseeProtocol("papers", skip_us=500_000, min_diag=30, min_side=10)
TOOLBOX_PROTOCOL = PropheseeProtocol("toolbox", skip_us=100_000, min_diag=30, min_side=20)
PROTOCOLS = {p.name: p for p in (PAPERS_PROTOCOL, TOOLBOX_PROTOCOL)}


def keep_boxes(boxes: np.ndarray, protocol: PropheseeProtocol = PAPERS_PROTOCOL) -> np.ndarray:
    """Mask of the boxes the protocol scores, shape [N] bool.

    Args:
        boxes: structured array with fields ``t`` (µs), ``w`` and ``h`` (pixels), shape [N]; sizes are
            taken as float32 (see the module docstring, step 1).
    """
    w, h = boxes["w"].astype(np.float32), boxes["h"].astype(np.float32)
    return ((boxes["t"].astype(np.int64) > protocol.skip_us) & (w * w + h * h >= np.float32(protocol.min_diag**2))
            & (w >= np.float32(protocol.min_side)) & (h >= np.float32(protocol.min_side)))


def _sorted_kept(boxes: np.ndarray, protocol: PropheseeProtocol) -> np.ndarray:
    kept = boxes[keep_boxes(boxes, protocol)]
    return kept[np.argsort(kept["t"], kind="stable")]


def _coco_box(row) -> list:
    # float32 scalars, as the toolbox passes them: pycocotools computes detection areas from these
    return [np.float32(row[k]) for k in ("x", "y", "w", "h")]


def prophesee_map(
    ground_truth: Sequence[np.ndarray],
    detections: Sequence[np.ndarray],
    names: dict[int, str],
    sensor: tuple[int, int] = (240, 304),
    protocol: PropheseeProtocol = PAPERS_PROTOCOL,
) -> dict:
    """COCO mAP of ``detections`` against ``ground_truth`` under ``protocol`` (see the module docstring).

    Args:
        ground_truth: one structured array per recording with fields ``t`` (µs), ``x``, ``y``, ``w``,
            ``h`` (pixels, top-left corner and size) and ``class_id``: a ``_bbox.npy`` file's rows.
        detections: one array per recording, in the same order, with those fields and ``class_confidence``
            (the score), e.g. :data:`DETECTION_DTYPE`; ``t`` is the time the detection is for.
        names: class id → name (COCO category ``id + 1``).
        sensor: (height, width) in pixels, the COCO image size.

    Returns:
        ``{"mAP50-95", "mAP50", "mAP75", "samples", "gt_boxes", "detections"}``: the COCO averages
        (NaN when no ground-truth box survives the filter, 0 when no detection does), the number of
        images (ground-truth timestamps) and ground-truth boxes scored, and the detections left after
        the filter (each counted once, though it may be scored in several images).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} ground-truth recordings but {len(detections)} detection recordings")
    images, annotations, results, n_detections = [], [], [], 0
    for gt, dt in zip(ground_truth, detections):
        gt, dt = _sorted_kept(gt, protocol), _sorted_kept(dt, protocol)
        n_detections += len(dt)
        gt_t, dt_t = gt["t"].astype(np.int64), dt["t"].astype(np.int64)  # int64: the toolbox's t, and ts − tol may be < 0
        stamps = np.unique(gt_t)
        gt_cuts = zip(np.searchsorted(gt_t, stamps, "left"), np.searchsorted(gt_t, stamps, "right"))
        dt_cuts = zip(np.searchsorted(dt_t, stamps - protocol.time_tol_us, "left"),
                      np.searchsorted(dt_t, stamps + protocol.time_tol_us, "right"))
        for (g0, g1), (d0, d1) in zip(gt_cuts, dt_cuts):
            image_id = len(images) + 1
            images.append({"id": image_id, "height": int(sensor[0]), "width": int(sensor[1])})
            for row in gt[g0:g1]:
                box = _coco_box(row)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "bbox": box,
                                    "category_id": int(row["class_id"]) + 1, "area": float(box[2] * box[3]),
                                    "iscrowd": 0})
            results += [{"image_id": image_id, "category_id": int(row["class_id"]) + 1, "bbox": _coco_box(row),
                         "score": float(row["class_confidence"])} for row in dt[d0:d1]]
    counts = {"samples": len(images), "gt_boxes": len(annotations), "detections": n_detections}
    if not annotations:
        return {"mAP50-95": math.nan, "mAP50": math.nan, "mAP75": math.nan, **counts}
    if not results:  # pycocotools cannot load an empty result list (the toolbox crashes); nothing detected scores 0
        return {"mAP50-95": 0.0, "mAP50": 0.0, "mAP75": 0.0, **counts}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": int(k) + 1, "name": v} for k, v in names.items()]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.params.imgIds = [im["id"] for im in images]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"mAP50-95": float(stats[0]), "mAP50": float(stats[1]), "mAP75": float(stats[2]), **counts}
