"""The official Prophesee evaluation on hand-built recordings whose COCO mAP is worked out by hand.

COCO AP of one class, as pycocotools computes it: rank the detections of all images by score (a
stable sort: ties keep image order), take precision and recall after each, make precision
non-increasing from the right, and average it over the 101 recall points 0, 0.01 ... 1 (0 past
the last recall reached). With boxes that match exactly (IoU 1), every IoU threshold gives the same
AP, so mAP50-95 equals it.
"""

import math
from dataclasses import replace

import numpy as np
import pytest

from spikeyolo.engine.event_evaluation import recording_boxes
from spikeyolo.engine.event_validator import SampleRecord
from spikeyolo.events.errors import EventFileError
from spikeyolo.events.labels import BOX_DTYPE, write_boxes
from spikeyolo.events.protocol import (
    DETECTION_DTYPE,
    PAPERS_PROTOCOL,
    PROTOCOLS,
    TOOLBOX_PROTOCOL,
    keep_boxes,
    prophesee_map,
)

NAMES = {0: "car", 1: "pedestrian"}
SENSOR = (240, 304)
CAR = (10.0, 20.0, 80.0, 40.0)  # x, y, w, h
OTHER_CAR = (150.0, 100.0, 60.0, 50.0)  # far from CAR: IoU 0
THIN = (200.0, 100.0, 15.0, 40.0)  # diagonal 42.7, one side 15: papers keep it, toolbox does not
SQUARE = float(np.float32(21.213203))  # (21.213203² · 2 in float32) = 900.0 exactly: diagonal 30, kept


def _gt(*rows) -> np.ndarray:
    """Ground truth rows (t µs, (x, y, w, h), class) as a _bbox.npy file holds them."""
    return np.array([(t, *box, c, 1.0, i) for i, (t, box, c) in enumerate(rows)], dtype=BOX_DTYPE)


def _dt(*rows) -> np.ndarray:
    """Detections (t µs, (x, y, w, h), class, score) in the toolbox's format."""
    return np.array([(t, *box, c, score) for t, box, c, score in rows], dtype=DETECTION_DTYPE)


def _score(gt, dt, protocol=PAPERS_PROTOCOL) -> dict:
    return prophesee_map([gt], [dt], NAMES, SENSOR, protocol)


def _exactly(value: float):
    """pycocotools averages in floating point: "exact" means equal up to the last bits."""
    return pytest.approx(value, rel=0, abs=1e-12)


def test_presets_are_the_papers_and_the_toolbox_script_settings():
    assert PROTOCOLS == {"papers": PAPERS_PROTOCOL, "toolbox": TOOLBOX_PROTOCOL}
    assert (PAPERS_PROTOCOL.skip_us, PAPERS_PROTOCOL.min_diag, PAPERS_PROTOCOL.min_side) == (500_000, 30, 10)
    assert (TOOLBOX_PROTOCOL.skip_us, TOOLBOX_PROTOCOL.min_diag, TOOLBOX_PROTOCOL.min_side) == (100_000, 30, 20)
    assert PAPERS_PROTOCOL.time_tol_us == TOOLBOX_PROTOCOL.time_tol_us == 50_000


def test_filters_in_float32_with_each_preset():
    below = float(np.nextafter(np.float32(SQUARE), np.float32(0)))  # 21.213202: w² + h² = 899.9998 in float32
    boxes = _gt(
        (600_000, (0, 0, SQUARE, SQUARE), 0),  # diagonal exactly 30 in float32 (float64: 899.9999995 < 900)
        (600_000, (0, 0, below, below), 0),  # just under the diagonal
        (600_000, THIN, 0),  # side 15
        (600_000, (0, 0, 10, 29), 0),  # side 10, diagonal 30.68
        (600_000, (0, 0, 9.9, 40), 0),  # side under 10
        (300_000, CAR, 0),  # between 0.1 s and 0.5 s
        (500_000, CAR, 0),  # at 0.5 s: the skip is strict (t > skip)
        (100_000, CAR, 0),  # at 0.1 s
        (100_001, CAR, 0),
    )
    assert keep_boxes(boxes, PAPERS_PROTOCOL).tolist() == [True, False, True, True, False, False, False, False, False]
    assert keep_boxes(boxes, TOOLBOX_PROTOCOL).tolist() == [True, False, False, False, False, True, True, False, True]


def test_a_square_at_the_diagonal_cut_off_is_scored():
    square = (100.0, 100.0, SQUARE, SQUARE)
    result = _score(_gt((600_000, square, 0)), _dt((600_000, square, 0, 0.9)))
    # a float64 filter drops the box and has nothing to score (NaN)
    assert result == {"mAP50-95": _exactly(1), "mAP50": _exactly(1), "mAP75": _exactly(1), "samples": 1,
                      "gt_boxes": 1, "detections": 1}


def test_the_two_presets_give_different_scores():
    gt = _gt((300_000, CAR, 0), (600_000, CAR, 0), (600_000, THIN, 0))
    dt = _dt((300_000, CAR, 0, 0.7), (600_000, CAR, 0, 0.9))
    # papers: one image (0.6 s) with CAR and THIN; the one detection left (0.9) hits CAR: recall 1/2 at
    # precision 1, so the 51 recall points 0 ... 0.50 score 1 and the other 50 score 0
    assert _score(gt, dt, PAPERS_PROTOCOL) == {"mAP50-95": _exactly(51 / 101), "mAP50": _exactly(51 / 101),
                                               "mAP75": _exactly(51 / 101), "samples": 1, "gt_boxes": 2,
                                               "detections": 1}
    # toolbox: THIN is dropped, 0.3 s is scored; images 0.3 s and 0.6 s each get their hit: AP 1
    assert _score(gt, dt, TOOLBOX_PROTOCOL) == {"mAP50-95": _exactly(1), "mAP50": _exactly(1), "mAP75": _exactly(1),
                                                "samples": 2, "gt_boxes": 2, "detections": 2}


@pytest.mark.parametrize("t, expected", [(550_000, 1.0), (650_000, 1.0), (549_999, 0.0), (650_001, 0.0)])
def test_detections_count_within_50_ms_of_the_label(t, expected):
    result = _score(_gt((600_000, CAR, 0)), _dt((t, CAR, 0, 0.9)))
    assert result["mAP50-95"] == _exactly(expected) and result["samples"] == 1


def test_labels_40_ms_apart_share_their_detections():
    gt = _gt((600_000, CAR, 0), (640_000, OTHER_CAR, 0))
    dt = _dt((600_000, CAR, 0, 0.9), (640_000, OTHER_CAR, 0, 0.8))
    # both detections lie within 50 ms of both labels. Image 0.60 s: CAR 0.9 hit, OTHER_CAR 0.8 false;
    # image 0.64 s: CAR 0.9 false, OTHER_CAR 0.8 hit. Ranked (the 0.9 tie in image order): hit, false,
    # false, hit: precision 1, 1/2, 1/3, 1/2 at recall 1/2, 1/2, 1/2, 1; made non-increasing: 1, 1/2, 1/2,
    # 1/2. Recall points 0 ... 0.50 score 1 (51), 0.51 ... 1 score 1/2 (50): AP = (51 + 25) / 101.
    result = _score(gt, dt)
    assert result == {"mAP50-95": _exactly(76 / 101), "mAP50": _exactly(76 / 101), "mAP75": _exactly(76 / 101),
                      "samples": 2, "gt_boxes": 2, "detections": 2}
    # matched at their own timestamp only, each image holds just its hit: AP 1
    assert _score(gt, dt, replace(PAPERS_PROTOCOL, time_tol_us=0))["mAP50-95"] == _exactly(1)


def test_a_false_positive_above_a_true_one_and_a_miss_across_recordings():
    # recording 1: CAR found (0.8); recording 2: its car missed, a false car (0.9) elsewhere.
    # Car ranking: false 0.9, hit 0.8 → precision 0, 1/2 at recall 0, 1/2 → non-increasing 1/2, 1/2: the
    # 51 recall points 0 ... 0.50 score 1/2, the rest 0: AP = 25.5 / 101.
    gt = [_gt((600_000, CAR, 0)), _gt((700_000, CAR, 0))]
    dt = [_dt((600_000, CAR, 0, 0.8)), _dt((700_000, OTHER_CAR, 0, 0.9))]
    result = prophesee_map(gt, dt, NAMES, SENSOR)
    assert result["mAP50-95"] == _exactly(25.5 / 101) and (result["samples"], result["gt_boxes"]) == (2, 2)


def test_half_overlapping_detection_counts_only_at_iou_050():
    half = (CAR[0], CAR[1], CAR[2] / 2, CAR[3])  # the car's left half: IoU 0.5 exactly, a hit at the 0.50 threshold only
    result = _score(_gt((600_000, CAR, 0)), _dt((600_000, half, 0, 0.9)))
    assert result["mAP50"] == _exactly(1) and result["mAP75"] == 0.0 and result["mAP50-95"] == _exactly(0.1)


def test_nothing_to_score():
    assert math.isnan(_score(_gt((100_000, CAR, 0)), _dt((100_000, CAR, 0, 0.9)))["mAP50-95"])  # no GT after 0.5 s
    # no detection at all: the toolbox crashes in pycocotools' loadRes, here it scores 0
    empty = _score(_gt((600_000, CAR, 0)), _dt())
    assert (empty["mAP50-95"], empty["mAP50"], empty["samples"], empty["detections"]) == (0.0, 0.0, 1, 0)
    with pytest.raises(ValueError, match="1 ground-truth recordings but 2 detection recordings"):
        prophesee_map([_gt()], [_dt(), _dt()], NAMES)


def _record(root, name, ts, boxes, scores, cls) -> SampleRecord:
    file = root / "images" / "test" / (f"{name}_{ts:012d}.npy" if ts is not None else f"{name}.npy")
    return SampleRecord(str(file), ts, SENSOR, np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                        np.array(cls, int))


def test_detections_join_every_box_of_their_recording(tmp_path):
    a = _gt((600_000, (-10, 20, 50, 40), 0), (600_000, THIN, 1), (900_000, (0, 0, 40, 40), 0))
    b = _gt((700_000, CAR, 0))
    write_boxes(tmp_path / "boxes" / "test" / "rec_a_bbox.npy", a)
    write_boxes(tmp_path / "boxes" / "test" / "rec_b_bbox.npy", b)
    records = [  # validation order; a's later sample first to see the sort by time
        _record(tmp_path, "rec_b", 700_000, [[10, 20, 90, 60]], [0.7], [0]),
        _record(tmp_path, "rec_a", 900_000, [[0, 0, 40.5, 40]], [0.6], [0]),
        _record(tmp_path, "rec_a", 600_000, [[0, 20, 40, 60], [200, 100, 215, 140]], [0.5, 0.4], [0, 1]),
    ]
    ground_truth, detections = recording_boxes(records)
    assert [len(g) for g in ground_truth] == [3, 1]  # every box of a, the 0.9 s one included; then b
    assert ground_truth[0]["t"].tolist() == [600_000, 600_000, 900_000] and ground_truth[1]["x"].tolist() == [10]
    dt_a = detections[0]
    assert dt_a.dtype == DETECTION_DTYPE and dt_a["t"].tolist() == [600_000, 600_000, 900_000]
    assert dt_a["w"].tolist() == [40, 15, 40.5] and dt_a["h"].tolist() == [40, 40, 40]
    assert dt_a["class_id"].tolist() == [0, 1, 0] and dt_a["class_confidence"].tolist() == pytest.approx([0.5, 0.4, 0.6])
    assert detections[1]["x"].tolist() == [10] and detections[1]["w"].tolist() == [80]
    with pytest.raises(EventFileError, match=r"boxes/test/rec_c_bbox.npy: the recording's boxes are missing"):
        recording_boxes([_record(tmp_path, "rec_c", 600_000, [], [], [])])
    with pytest.raises(EventFileError, match=r"frame.npy: no label timestamp in the sample name"):
        recording_boxes([_record(tmp_path, "frame", None, [], [], [])])
