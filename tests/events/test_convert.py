"""Conversion of raw recordings: samples and labels, resumption, refusal to overwrite, bad files skipped."""

import numpy as np
import pytest
import yaml

from spikeyolo.commands.cli import main as cli
from spikeyolo.events import convert as convert_module
from spikeyolo.events.config import GEN1_YAML
from spikeyolo.events.convert import convert_dataset
from spikeyolo.events.dat import DatFile
from spikeyolo.events.labels import BOX_DTYPE, read_boxes, write_boxes, yolo_rows
from spikeyolo.events.representation import EventRepresentation

from .conftest import TOOLBOX_DTYPE


def test_conversion_writes_reference_samples_and_labels(raw_gen1, gen1_data):
    out = gen1_data.parent
    data = yaml.safe_load(gen1_data.read_text())
    assert data["path"] == str(out) and data["val"] == "images/test" and data["names"] == {0: "car", 1: "pedestrian"}
    assert data["events"] == {"kind": "grey", "T": 2, "window_us": 250000, "count_clip": 8,
                              "time_order": "oldest_first", "labels": "reference", "sensor": [240, 304]}
    assert data["hyp"]["lr0"] == 0.02 and data["hyp"]["imgsz"] == 320 and data["hyp"]["mosaic"] == 0.0
    rep = EventRepresentation()
    for split, n_rec in (("train", 3), ("test", 2)):
        samples = sorted((out / "images" / split).glob("*.npy"))
        expected = 0
        for dat_file in sorted((raw_gen1 / split).glob("*_td.dat")):
            name = dat_file.name[: -len("_td.dat")]
            boxes = read_boxes(raw_gen1 / split / f"{name}_bbox.npy")
            expected += len(np.unique(boxes["t"]))
        assert len(samples) == expected and expected > 0
    # one sample, recomputed independently of the converter
    sample = sorted((out / "images" / "train").glob("*.npy"))[3]
    name, ts = sample.stem.rsplit("_", 1)
    ts = int(ts)
    dat = DatFile(raw_gen1 / "train" / f"{name}_td.dat")
    window = dat.events()
    window = window[(window["t"] >= ts - 250_000) & (window["t"] < ts)]
    np.testing.assert_array_equal(np.load(sample), rep.frames(window, ts, 240, 304))
    boxes = read_boxes(raw_gen1 / "train" / f"{name}_bbox.npy")
    rows = np.loadtxt(out / "labels" / "train" / f"{sample.stem}.txt", ndmin=2)
    np.testing.assert_allclose(rows, yolo_rows(boxes[boxes["t"] == ts], 240, 304), rtol=0, atol=1e-15)


def test_resume_skips_finished_and_redoes_interrupted(raw_gen1, tmp_path):
    out = tmp_path / "conv"
    first = convert_dataset(raw_gen1, out, splits=("test",), workers=1, progress=False)
    assert (first.converted, first.reused, first.skipped) == (2, 0, [])
    files = sorted((out / "images" / "test").glob("*.npy"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = convert_dataset(raw_gen1, out, splits=("test",), workers=1, progress=False)
    assert (again.converted, again.reused, again.samples) == (0, 2, 0)
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    marker = sorted((out / ".done" / "test").glob("*.json"))[0]
    marker.unlink()  # as if interrupted inside this recording
    resumed = convert_dataset(raw_gen1, out, splits=("test",), workers=1, progress=False)
    assert (resumed.converted, resumed.reused) == (1, 1) and marker.is_file()
    # the time order is read when samples are loaded: switching it reuses every stored sample
    reordered = convert_dataset(raw_gen1, out, splits=("test",), representation=EventRepresentation(time_order="newest_first"),
                                workers=1, progress=False)
    assert (reordered.converted, reordered.reused) == (0, 2)
    assert yaml.safe_load(reordered.data_yaml.read_text())["events"]["time_order"] == "newest_first"
    for raw_boxes in sorted((raw_gen1 / "test").glob("*_bbox.npy")):  # kept for the Prophesee protocol
        np.testing.assert_array_equal(read_boxes(out / "boxes" / "test" / raw_boxes.name), read_boxes(raw_boxes))
    with pytest.raises(FileExistsError, match="conversion with other settings"):
        convert_dataset(raw_gen1, out, splits=("test",), representation=EventRepresentation(T=4), progress=False)
    redone = convert_dataset(raw_gen1, out, splits=("test",), representation=EventRepresentation(kind="counts", T=4),
                             overwrite=True, workers=1, progress=False)
    assert redone.converted == 2 and np.load(files[0]).shape == (4, 3, 240, 304)
    assert yaml.safe_load(redone.data_yaml.read_text())["events"]["kind"] == "counts"
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError, match="other files"):
        convert_dataset(raw_gen1, tmp_path / "foreign", progress=False)


def test_bad_recordings_are_skipped_and_listed(raw_gen1, tmp_path, capsys):
    raw = tmp_path / "raw" / "train"
    raw.mkdir(parents=True)
    good = sorted((raw_gen1 / "train").glob("*_td.dat"))[0]
    name = good.name[: -len("_td.dat")]
    boxes = read_boxes(raw_gen1 / "train" / f"{name}_bbox.npy")
    content = good.read_bytes()
    header_end = content.index(b"\n% Width 304\n") + len(b"\n% Width 304\n")

    def pair(stem, dat_bytes=None, box_rows=boxes):
        if dat_bytes is not None:
            (raw / f"{stem}_td.dat").write_bytes(dat_bytes)
        if box_rows is not None:
            write_boxes(raw / f"{stem}_bbox.npy", box_rows)

    pair("good", content)
    pair("truncated", content[:-3])
    pair("noheader", content[header_end:])
    pair("size", content[:header_end] + bytes((0, 4)) + content[header_end + 2:])
    backwards = bytearray(content)
    first_event = header_end + 2
    backwards[first_event + 8 * 100:first_event + 8 * 100 + 4] = (0).to_bytes(4, "little")  # t of event 100 := 0
    pair("backwards", bytes(backwards))
    pair("orphanboxes", None)
    pair("orphanevents", content, None)
    outside = boxes.copy()
    outside["x"][0] = 400
    pair("outside", content, outside)
    pair("empty", content[:header_end + 2])
    pair("nolabels", content, boxes[:0])
    pair("grid", content, None)
    np.save(raw / "grid_bbox.npy", np.zeros((2, 3), dtype=BOX_DTYPE))  # 2-D: once a raw NumPy broadcast error
    for stem, field, value in (("minus", "t", -1), ("class300", "class_id", 300)):
        toolbox = np.zeros(len(boxes), dtype=TOOLBOX_DTYPE)  # i8 t and u4 class_id: -1 and 300 are writable
        for k in TOOLBOX_DTYPE.names:
            toolbox[k] = boxes[k]
        toolbox[field][0] = value
        pair(stem, content, None)
        np.save(raw / f"{stem}_bbox.npy", toolbox)
    unknown = boxes.copy()
    unknown["class_id"][0] = 5  # fits the file's u1, but Gen1 has classes 0 and 1
    pair("class5", content, unknown)
    pair("wide", content.replace(b"% Width 304\n", b"% Width 320\n"))  # events all lie on 304 columns
    late = np.concatenate([boxes, boxes[-1:]])
    late["t"][-1] = 9_000_000  # 9 s into a 1.5 s recording: no event before it
    pair("late", content, late)
    pair("lonely", content, late[-1:])

    code = cli(["events", "convert", f"source={tmp_path / 'raw'}", f"out={tmp_path / 'out'}", "workers=2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "converted 2 recording(s)" in out and "skipped 15 file(s):" in out
    for expected in [
        "truncated_td.dat: truncated, ", "noheader_td.dat: no '%' header", "size_td.dat: event size byte is 4",
        "backwards_td.dat: timestamps go backwards at event 100", "orphanboxes_bbox.npy: has no event file orphanboxes_td.dat",
        "orphanevents_td.dat: has no label file orphanevents_bbox.npy", "outside_bbox.npy: 1 box(es) lie entirely outside",
        "empty_td.dat: empty recording", "nolabels_bbox.npy: no boxes",
        "grid_bbox.npy: not a Gen1 box array: a structured array of shape (2, 3); a box file holds one row per box",
        "minus_bbox.npy: field 't' of box 0 is -1, not a whole number in 0 … 18446744073709551615",
        f"class300_bbox.npy: field 'class_id' of box 0 (t={boxes['t'][0]} µs) is 300, not a whole number in 0 … 255",
        (f"class5_bbox.npy: field 'class_id' of box 0 (t={boxes['t'][0]} µs) is 5, not a class of the dataset (its "
         "names give classes 0 … 1)"),
        ("wide_td.dat: header field 'Width' is 320, but the dataset's sensor is 240 high and 304 wide (events.sensor of "
         "the config template)"),
        ("lonely_bbox.npy: none of the 1 label timestamps (9000000 … 9000000 µs) has events in the 250000 µs before it; "
         f"the events of lonely_td.dat end at {DatFile(good).duration_us} µs"),
    ]:
        assert expected in out, expected
    assert "no sample for 1 label timestamp(s) with no events in the window before them" in out
    assert "  train/late: 1 (9000000 µs)" in out
    conv = tmp_path / "out"
    assert sorted(p.stem for p in (conv / ".done" / "train").glob("*.json")) == ["good", "late"]
    assert sorted(p.name for p in (conv / "boxes" / "train").iterdir()) == ["good_bbox.npy", "late_bbox.npy"]
    samples = sorted(p.name for p in (conv / "images" / "train").iterdir())
    n = len(np.unique(boxes["t"]))
    assert len(samples) == 2 * n and all(s.startswith(("good_", "late_")) for s in samples)
    assert "late_000009000000.npy" not in samples  # no frame without events ...
    assert read_boxes(conv / "boxes" / "train" / "late_bbox.npy")["t"][-1] == 9_000_000  # ... but its box is scored
    assert yaml.safe_load((conv / "data.yaml").read_text())["events"]["sensor"] == [240, 304]
    again = convert_dataset(tmp_path / "raw", conv, workers=1, progress=False)  # nothing converted is lost or redone
    assert (again.converted, again.reused, len(again.skipped)) == (0, 2, 15)
    assert cli(["events", "convert", f"source={tmp_path / 'nothing'}", f"out={tmp_path / 'o2'}"]) == 2
    assert "no recordings" in capsys.readouterr().err


def test_a_failing_recording_loses_nothing(raw_gen1, tmp_path, monkeypatch):
    out = tmp_path / "conv"
    first, second = (p.name[: -len("_td.dat")] for p in sorted((raw_gen1 / "test").glob("*_td.dat")))
    labels_made = []

    def fails_at_the_third_sample(boxes, *args, **kwargs):
        labels_made.append(1)
        if len(labels_made) == 3:
            raise RuntimeError("disk hiccup")
        return yolo_rows(boxes, *args, **kwargs)

    monkeypatch.setattr(convert_module, "yolo_rows", fails_at_the_third_sample)
    report = convert_dataset(raw_gen1, out, splits=("test",), workers=1, progress=False)
    reason = f"{raw_gen1 / 'test' / first}_td.dat with {first}_bbox.npy: unexpected RuntimeError: disk hiccup"
    assert (report.converted, report.skipped) == (1, [(f"test/{first}", reason)])
    left = {p.name.rsplit("_", 1)[0] for p in (out / "images" / "test").iterdir()}
    assert left == {second} and {p.name.rsplit("_", 1)[0] for p in (out / "labels" / "test").iterdir()} == {second}
    (out / "images" / "test" / f"{first}_000000000007.npy").write_bytes(b"left by a killed run")
    labels_made.clear()
    again = convert_dataset(raw_gen1, out, splits=("test",), workers=1, progress=False)  # fails again: no leftover stays
    assert again.skipped == report.skipped and not list((out / "images" / "test").glob(f"{first}_*"))
    monkeypatch.undo()
    resumed = convert_dataset(raw_gen1, out, splits=("test",), workers=1, progress=False)
    assert (resumed.converted, resumed.reused, resumed.skipped) == (1, 1, [])
    expected = sum(len(np.unique(read_boxes(b)["t"])) for b in (raw_gen1 / "test").glob("*_bbox.npy"))
    assert len(list((out / "images" / "test").iterdir())) == expected


def test_a_template_for_another_sensor(raw_gen1, tmp_path):
    template = yaml.safe_load(GEN1_YAML.read_text())
    template["events"]["sensor"] = [480, 640]
    report = convert_dataset(raw_gen1, tmp_path / "conv", config=template, splits=("test",), workers=1, progress=False)
    assert report.converted == 0 and len(report.skipped) == 2
    assert all("header field 'Height' is 240 and 'Width' is 304, but the dataset's sensor is 480 high and 640 wide"
               in reason for _, reason in report.skipped)
    template["events"]["sensor"] = [240]
    with pytest.raises(ValueError, match=r"the config: events.sensor is \[240\], not \[height, width\] in pixels"):
        convert_dataset(raw_gen1, tmp_path / "conv2", config=template, progress=False)
