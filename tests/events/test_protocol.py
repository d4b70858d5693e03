"""The Prophesee protocol on hand-built boxes whose COCO mAP is known exactly."""

import math

import numpy as np
import pytest

from spikeyolo.events.errors import EventFileError
from spikeyolo.engine.event_evaluation import scored_samples
from spikeyolo.events.labels import BOX_DTYPE, write_boxes
from spikeyolo.events.protocol import GEN1_PROTOCOL, ONE_MPX_PROTOCOL, ScoredSample, keep_boxes, prophesee_map
from spikeyolo.engine.event_validator import SampleRecord

NAMES = {0: "car", 1: "pedestrian"}
SENSOR = (240, 304)
CAR = [10.0, 20.0, 90.0, 60.0]  # 80 × 40 px
WALKER = [200.0, 100.0, 220.0, 160.0]  # 20 × 60 px


def _boxes(rows) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _sample(ts, gt, gt_cls, det=(), scores=(), cls=()) -> ScoredSample:
    return ScoredSample(ts, _boxes(gt), np.array(gt_cls, int), _boxes(det), np.array(scores, float), np.array(cls, int))


def _exactly(value: float):
    """pycocotools averages in floating point: "exact" means equal up to the last bits."""
    return pytest.approx(value, rel=0, abs=1e-12)


def _perfect(ts, gt, gt_cls) -> ScoredSample:
    return _sample(ts, gt, gt_cls, gt, [0.9] * len(gt), gt_cls)


def test_size_filter_gen1_and_1mpx():
    boxes = _boxes([
        [0, 0, 10, 29],  # diagonal 30.7, side 10: kept
        [0, 0, 9.9, 40],  # side below 10: dropped
        [0, 0, 21, 21],  # diagonal 29.7: dropped
        [0, 0, 21.3, 21.3],  # diagonal 30.1: kept
        [0, 0, 20, 60],  # kept by Gen1 and by 1 Mpx (diagonal 63.2, sides >= 20)
    ])
    assert keep_boxes(boxes, GEN1_PROTOCOL).tolist() == [True, False, False, True, True]
    assert keep_boxes(boxes, ONE_MPX_PROTOCOL).tolist() == [False, False, False, False, True]


def test_perfect_detections_score_one():
    samples = [_perfect(600_000, [CAR, WALKER], [0, 1]), _perfect(850_000, [CAR], [0])]
    result = prophesee_map(samples, NAMES, SENSOR)
    assert result == {"mAP50-95": _exactly(1), "mAP50": _exactly(1), "mAP75": _exactly(1), "samples": 2, "gt_boxes": 3,
                      "detections": 3}


def test_filters_drop_exactly_the_boxes_they_should():
    samples = [
        _sample(500_000, [CAR], [0]),  # at 0.5 s: not scored, so its missed car costs nothing
        _sample(100_000, [CAR], [0], [WALKER], [0.99], [0]),  # early: its false detection costs nothing either
        _sample(600_000, [CAR, [50, 50, 58, 100]], [0, 1], [CAR, [50, 50, 58, 100]], [0.9, 0.8], [0, 1]),  # 8 px wide
        _sample(700_000, [[5, 5, 20, 20]], [1], [WALKER], [0.95], [1]),  # all boxes too small: no image at all
        _sample(800_000, [WALKER], [1], [WALKER, [100, 100, 105, 200]], [0.9, 0.99], [1, 1]),  # small false one
    ]
    result = prophesee_map(samples, NAMES, SENSOR)
    assert result == {"mAP50-95": _exactly(1), "mAP50": _exactly(1), "mAP75": _exactly(1), "samples": 2, "gt_boxes": 2,
                      "detections": 2}
    unfiltered = prophesee_map(samples, NAMES, SENSOR, type(GEN1_PROTOCOL)(skip_us=0, min_diag=0, min_side=0))
    assert unfiltered["samples"] == 5 and unfiltered["gt_boxes"] == 6 and unfiltered["mAP50-95"] < 0.9


def test_a_false_positive_above_a_true_one_and_a_miss():
    # one class, two ground-truth boxes; ranked detections: true (0.9), false (0.8). Recall reaches 0.5 at
    # precision 1, so 51 of COCO's 101 recall points (0, 0.01 ... 0.50) have precision 1 and the rest 0.
    far_away = [150.0, 150.0, 230.0, 190.0]
    samples = [_sample(600_000, [CAR, [100, 20, 180, 60]], [0, 0], [CAR, far_away], [0.9, 0.8], [0, 0])]
    result = prophesee_map(samples, NAMES, SENSOR)
    assert result["mAP50-95"] == _exactly(51 / 101) and result["mAP50"] == _exactly(51 / 101)


def test_half_overlapping_detection_counts_only_at_iou_050():
    # the detection covers the car's left half plus nothing else: IoU 0.5 exactly, a hit only at the 0.50 threshold
    half = [CAR[0], CAR[1], (CAR[0] + CAR[2]) / 2, CAR[3]]
    result = prophesee_map([_sample(600_000, [CAR], [0], [half], [0.9], [0])], NAMES, SENSOR)
    assert result["mAP50"] == _exactly(1) and result["mAP75"] == 0.0 and result["mAP50-95"] == _exactly(0.1)


def test_nothing_to_score():
    assert math.isnan(prophesee_map([_sample(100_000, [CAR], [0])], NAMES, SENSOR)["mAP50-95"])
    assert prophesee_map([_sample(600_000, [CAR], [0])], NAMES, SENSOR)["mAP50-95"] == 0.0


def test_ground_truth_comes_from_the_recordings_own_boxes(tmp_path):
    # the converted YOLO labels shift a box that sticks out on the left; the protocol scores the original box
    boxes = np.array([(600_000, -10, 20, 50, 40, 0, 1, 3), (600_000, 100, 50, 20, 60, 1, 1, 4),
                      (900_000, 0, 0, 40, 40, 0, 1, 3)], dtype=BOX_DTYPE)
    write_boxes(tmp_path / "boxes" / "test" / "rec_a_bbox.npy", boxes)
    detections = _boxes([[0, 20, 40, 60]])
    record = SampleRecord(str(tmp_path / "images" / "test" / "rec_a_000000600000.npy"), 600_000, SENSOR,
                          detections, np.array([0.5]), np.array([0]))
    (sample,) = scored_samples([record])
    np.testing.assert_array_equal(sample.gt_boxes, [[-10, 20, 40, 60], [100, 50, 120, 110]])
    assert sample.gt_cls.tolist() == [0, 1] and sample.ts_us == 600_000 and sample.boxes is detections
    missing = SampleRecord(str(tmp_path / "images" / "test" / "rec_b_000000600000.npy"), 600_000, SENSOR,
                           detections, np.array([0.5]), np.array([0]))
    with pytest.raises(EventFileError, match=r"boxes/test/rec_b_bbox.npy: the recording's boxes are missing"):
        scored_samples([missing])
    unnamed = SampleRecord(str(tmp_path / "images" / "test" / "frame.npy"), None, SENSOR, detections,
                           np.array([0.5]), np.array([0]))
    with pytest.raises(EventFileError, match=r"frame.npy: no label timestamp in the sample name"):
        scored_samples([unnamed])
