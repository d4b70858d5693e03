"""Conversion of raw recordings: samples and labels, resumption, refusal to overwrite, bad files skipped."""

import numpy as np
import pytest
import yaml

from spikeyolo.commands.cli import main as cli
from spikeyolo.events.convert import convert_dataset
from spikeyolo.events.dat import DatFile
from spikeyolo.events.labels import read_boxes, write_boxes, yolo_rows
from spikeyolo.events.representation import EventRepresentation


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

    code = cli(["events", "convert", f"source={tmp_path / 'raw'}", f"out={tmp_path / 'out'}", "workers=2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "converted 1 recording(s)" in out and "skipped 9 file(s):" in out
    for expected in [
        "truncated_td.dat: truncated, ", "noheader_td.dat: no '%' header", "size_td.dat: event size byte is 4",
        "backwards_td.dat: timestamps go backwards at event 100", "orphanboxes_bbox.npy: has no event file orphanboxes_td.dat",
        "orphanevents_td.dat: has no label file orphanevents_bbox.npy", "outside_bbox.npy: 1 box(es) lie entirely outside",
        "empty_td.dat: empty recording", "nolabels_bbox.npy: no boxes",
    ]:
        assert expected in out, expected
    assert len(list((tmp_path / "out" / ".done" / "train").glob("*.json"))) == 1
    assert cli(["events", "convert", f"source={tmp_path / 'nothing'}", f"out={tmp_path / 'o2'}"]) == 2
    assert "no recordings" in capsys.readouterr().err
