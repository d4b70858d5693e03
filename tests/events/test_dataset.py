"""The event dataset: [T, 3, S, S] letterboxed samples, the time-order switch, the same input path for
prediction, and bad converted samples named in the error."""

import cv2
import numpy as np
import pytest
import torch
import yaml
from ultralytics.cfg import get_cfg

from spikeyolo.events.convert import convert_dataset
from spikeyolo.events.dataset import build_event_dataset, letterbox_to_sensor
from spikeyolo.engine.event_predictor import prepare_input
from spikeyolo.events.representation import EventRepresentation

S = 64
ROWS = 51  # 240 · 64 / 304 = 50.5, rounded up as ultralytics does
TOP = 6  # (64 - 51) / 2 = 6.5: 6 rows of padding on top, 7 below


def _data(data_yaml, **events) -> dict:
    data = yaml.safe_load(data_yaml.read_text())
    data["events"] = {**data["events"], **events}
    return data


def _dataset(data: dict, split: str = "test", imgsz: int = S, **overrides):
    cfg = get_cfg(overrides={"imgsz": imgsz, **overrides})
    return build_event_dataset(cfg, f"{data['path']}/images/{split}", 4, data, mode="val")


def _resized(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (S, ROWS), interpolation=cv2.INTER_LINEAR)


def test_samples_are_letterboxed_time_stacks_oldest_first(gen1_data):
    data = _data(gen1_data)
    dataset = _dataset(data)
    sample = dataset[5]
    stored = np.load(sample["im_file"])  # [2, 1, 240, 304]
    img = sample["img"].numpy()
    assert img.shape == (2, 3, S, S) and img.dtype == np.uint8
    assert sample["ori_shape"] == (240, 304) and sample["ratio_pad"] == ((ROWS / 240, S / 304), (0, TOP))
    assert (img[:, :, :TOP] == 114).all() and (img[:, :, TOP + ROWS:] == 114).all()
    for k in range(2):  # bin k is stored bin k, resized bilinearly, in each of the 3 channels
        for c in range(3):
            np.testing.assert_array_equal(img[k, c, TOP:TOP + ROWS], _resized(stored[k, 0]))
    assert not np.array_equal(img[0], img[1])
    rows = np.loadtxt(sample["im_file"].replace("/images/", "/labels/").replace(".npy", ".txt"), ndmin=2)
    np.testing.assert_array_equal(sample["cls"].numpy()[:, 0], rows[:, 0])
    expected = rows[:, 1:].copy()
    expected[:, 1] = (rows[:, 2] * ROWS + TOP) / S  # y centre moves into the letterbox
    expected[:, 3] = rows[:, 4] * ROWS / S
    np.testing.assert_allclose(sample["bboxes"].numpy(), expected, atol=1e-6)


def test_newest_first_reverses_only_the_time_axis_everywhere(gen1_data):
    oldest = _dataset(_data(gen1_data))[2]
    newest_data = _data(gen1_data, time_order="newest_first")
    newest = _dataset(newest_data)[2]
    assert torch.equal(newest["img"], oldest["img"].flip(0))
    assert torch.equal(newest["bboxes"], oldest["bboxes"])
    frames = np.load(oldest["im_file"])
    for data, sample in ((_data(gen1_data), oldest), (newest_data, newest)):  # prediction: the same input
        img, ratio_pad = prepare_input(frames, EventRepresentation(**{k: v for k, v in data["events"].items()
                                                                     if k not in ("labels", "sensor")}), S)
        assert torch.equal(img, sample["img"]) and ratio_pad == sample["ratio_pad"]


def test_count_channels_keep_their_order_with_one_time_bin(raw_gen1, tmp_path):
    # With T = 1 the stack has 3 channels: ultralytics' BGR→RGB flip must not swap ON and grey
    report = convert_dataset(raw_gen1, tmp_path / "counts", splits=("test",), workers=1, progress=False,
                             representation=EventRepresentation(kind="counts", T=1))
    data = yaml.safe_load(report.data_yaml.read_text())
    sample = _dataset(data)[4]
    stored = np.load(sample["im_file"])  # [1, 3, 240, 304]: ON, OFF, grey
    assert sample["img"].shape == (1, 3, S, S)
    for c in range(3):
        np.testing.assert_array_equal(sample["img"][0, c, TOP:TOP + ROWS].numpy(), _resized(stored[0, c]))


def test_letterbox_to_sensor_undoes_each_axis():
    sensor = (240, 304)
    ratio_pad = ((ROWS / 240, S / 304), (0, TOP))
    box = torch.tensor([[0.0, TOP, S, TOP + ROWS], [S / 304 * 10, TOP + ROWS / 240 * 20, S / 304 * 50, TOP + ROWS / 2]])
    np.testing.assert_allclose(letterbox_to_sensor(box, ratio_pad, sensor).numpy(), [[0, 0, 304, 240], [10, 20, 50, 120]],
                               atol=1e-4)
    outside = torch.tensor([[-5.0, 0.0, 70.0, 64.0]])
    assert letterbox_to_sensor(outside, ratio_pad, sensor).tolist() == [[0.0, 0.0, 304.0, 240.0]]


def test_bad_samples_name_the_file(gen1_data, tmp_path):
    data = _data(gen1_data)
    data["path"] = str(tmp_path)
    images, labels = tmp_path / "images" / "test", tmp_path / "labels" / "test"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no event samples \(\*.npy\) in .*images/test"):
        _dataset(data)
    np.save(images / "rec_000000500000.npy", np.zeros((2, 1, 240, 304), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"label file .*labels/test/rec_000000500000.txt of sample"):
        _dataset(data)
    bad_labels = {
        "0 0.5 0.5 0.1\n": r"rec_000000500000.txt: every line must be 'class cx cy w h'",
        "2 0.5 0.5 0.1 0.1\n": r"rec_000000500000.txt: class ids must be integers in \[0, 2\)",
        "1 0.5 1.5 0.1 0.1\n": r"rec_000000500000.txt: box coordinates must be normalised",
    }
    for text, message in bad_labels.items():
        (labels / "rec_000000500000.txt").write_text(text)
        with pytest.raises(ValueError, match=message):
            _dataset(data)
    (labels / "rec_000000500000.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    np.save(images / "rec_000000500000.npy", np.zeros((4, 1, 240, 304), np.uint8))  # T = 4 where the YAML says 2
    dataset = _dataset(data)
    with pytest.raises(ValueError, match=r"rec_000000500000.npy: sample of shape \(4, 1, 240, 304\)"):
        dataset[0]
