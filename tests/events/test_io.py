"""Gen1 .dat and _bbox.npy I/O against files written byte by byte from the format description."""

import os
import stat
import struct

import numpy as np
import pytest

from spikeyolo.events.dat import EVENT_DTYPE, DatFile, write_dat
from spikeyolo.events.errors import EventFileError
from spikeyolo.events.labels import BOX_DTYPE, check_boxes_on_sensor, read_boxes, write_boxes, yolo_rows

from .conftest import TOOLBOX_DTYPE

EVENTS = [(0, 0, 0, 0), (5, 303, 239, 1), (5, 17, 200, 1), (1000, 100, 1, 0), (2**32 - 1, 16383 % 304, 7, 1)]


def _by_hand(path, events, header=b"% Date 2019-01-01 00:00:00\n% Height 240\n% Width 304\n", size=8):
    """A DAT file from the format description: header, type byte, size byte, (uint32 t, uint32 x|y<<14|p<<28)."""
    body = b"".join(struct.pack("<II", t, x | (y << 14) | (p << 28)) for t, x, y, p in events)
    path.write_bytes(header + bytes((0, size)) + body)
    return path


def test_reader_decodes_hand_written_file(tmp_path):
    dat = DatFile(_by_hand(tmp_path / "a_td.dat", EVENTS))
    assert (dat.height, dat.width, dat.event_type, len(dat)) == (240, 304, 0, 5)
    assert dat.header["Date"] == "2019-01-01 00:00:00"
    ev = dat.events()
    assert [tuple(int(v) for v in e) for e in ev] == EVENTS
    assert dat.duration_us == 2**32 - 1
    window = dat.window(5, 1000)  # start inclusive, end exclusive
    assert window["t"].tolist() == [5, 5] and window["x"].tolist() == [303, 17]
    assert len(dat.window(1001, 2000)) == 0 and dat.index(6) == 3


def test_writer_matches_hand_written_bytes(tmp_path):
    events = np.array(EVENTS, dtype=EVENT_DTYPE)
    written = write_dat(tmp_path / "w_td.dat", events, header={"Date": "2019-01-01 00:00:00"})
    assert written.read_bytes() == _by_hand(tmp_path / "h_td.dat", EVENTS).read_bytes()


def test_reader_uses_memory_map_and_defaults_to_gen1_sensor(tmp_path):
    dat = DatFile(_by_hand(tmp_path / "n_td.dat", EVENTS[:2], header=b"% Version 2\n"))
    assert (dat.height, dat.width) == (240, 304)
    assert isinstance(dat._records, np.memmap)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "no '%' header"),
        (bytes((0, 8)) + b"\x00" * 16, "no '%' header"),
        (b"% Height 240\n", "ends before the event type and size bytes"),
        (b"% Height 240", "not terminated by a newline"),
        (b"% H\xe9ight 240\n" + bytes((0, 8)), "not ASCII"),
        (b"% Height two hundred\n" + bytes((0, 8)), "'Height' is 'two hundred'"),
        (b"% Height 240\n" + bytes((0, 16)), "event size byte is 16"),
        (b"% Height 240\n" + bytes((0, 8)) + b"\x00" * 13, "truncated, 13 bytes of events"),
    ],
)
def test_bad_dat_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad_td.dat"
    path.write_bytes(content)
    with pytest.raises(EventFileError, match=message) as info:
        DatFile(path)
    assert str(path) in str(info.value)


def test_backwards_timestamps_and_off_sensor_events(tmp_path):
    path = _by_hand(tmp_path / "back_td.dat", [(10, 0, 0, 0), (20, 0, 0, 1), (15, 0, 0, 1)])
    with pytest.raises(EventFileError, match=r"back_td.dat: timestamps go backwards at event 2 \(20 µs, then 15 µs\)"):
        DatFile(path)
    assert len(DatFile(path, check=False)) == 3
    path = _by_hand(tmp_path / "off_td.dat", [(10, 304, 0, 0)])
    with pytest.raises(EventFileError, match=r"off_td.dat: event 0 at \(x=304, y=0\) lies outside the 304×240 sensor"):
        DatFile(path)
    with pytest.raises(EventFileError, match="missing_td.dat: event file not found"):
        DatFile(tmp_path / "missing_td.dat")


def test_empty_recording_is_a_valid_file(tmp_path):
    dat = DatFile(write_dat(tmp_path / "e_td.dat", np.zeros(0, EVENT_DTYPE)))
    assert len(dat) == 0 and len(dat.window(0, 10**6)) == 0 and dat.duration_us == 0


def test_writer_refuses_bad_events(tmp_path):
    with pytest.raises(ValueError, match="non-decreasing"):
        write_dat(tmp_path / "x.dat", np.array([(2, 0, 0, 0), (1, 0, 0, 0)], dtype=EVENT_DTYPE))
    with pytest.raises(ValueError, match="sensor"):
        write_dat(tmp_path / "x.dat", np.array([(2, 0, 240, 0)], dtype=EVENT_DTYPE))
    assert not list(tmp_path.iterdir())


def _boxes(rows):
    return np.array(rows, dtype=BOX_DTYPE)


@pytest.mark.parametrize("old_names", [False, True])
def test_box_files_in_both_namings(tmp_path, old_names):
    boxes = _boxes([(200, 1, 2, 3, 4, 1, 0.5, 7), (100, 10, 20, 30, 40, 0, 1.0, 3)])
    path = write_boxes(tmp_path / "a_bbox.npy", boxes, old_names=old_names)
    names = np.load(path).dtype.names
    assert ("ts" in names and "confidence" in names) if old_names else ("t" in names and "class_confidence" in names)
    back = read_boxes(path)
    assert back.dtype == BOX_DTYPE and back["t"].tolist() == [100, 200]  # sorted by time
    assert back["track_id"].tolist() == [3, 7] and back["class_confidence"].tolist() == [1.0, 0.5]


def test_bad_box_files_name_the_file(tmp_path):
    (tmp_path / "junk_bbox.npy").write_bytes(b"not numpy")
    with pytest.raises(EventFileError, match="junk_bbox.npy: not a readable .npy"):
        read_boxes(tmp_path / "junk_bbox.npy")
    np.save(tmp_path / "plain_bbox.npy", np.zeros((3, 4)))
    with pytest.raises(EventFileError, match=r"plain_bbox.npy: not a Gen1 box array: a plain float64 array of shape \(3, 4\)"):
        read_boxes(tmp_path / "plain_bbox.npy")
    # a 2-D structured array once failed inside NumPy ("could not broadcast"), naming no file
    np.save(tmp_path / "grid_bbox.npy", np.zeros((2, 3), dtype=BOX_DTYPE))
    with pytest.raises(EventFileError, match=r"grid_bbox.npy: not a Gen1 box array: a structured array of shape "
                                             r"\(2, 3\); a box file holds one row per box \(a 1-D structured array\)"):
        read_boxes(tmp_path / "grid_bbox.npy")
    np.save(tmp_path / "fields_bbox.npy", np.zeros(2, dtype=[("x", "f4"), ("y", "f4")]))
    with pytest.raises(EventFileError, match=r"fields_bbox.npy: not a Gen1 box array: missing field\(s\) \['t/ts', 'w', 'h', "
                                             r"'class_id', 'track_id'\] \(fields \['x', 'y'\]\)"):
        read_boxes(tmp_path / "fields_bbox.npy")
    write_boxes(tmp_path / "neg_bbox.npy", _boxes([(1, 0, 0, -5, 4, 0, 1, 0)]))
    with pytest.raises(EventFileError, match=r"neg_bbox.npy: field 'w' of box 0 \(t=1 µs\) is -5.0, a negative size"):
        read_boxes(tmp_path / "neg_bbox.npy")
    with pytest.raises(EventFileError, match="none_bbox.npy: label file not found"):
        read_boxes(tmp_path / "none_bbox.npy")
    outside = _boxes([(1, 10, 10, 5, 5, 0, 1, 0), (2, 310, 10, 5, 5, 0, 1, 1), (3, -20, 10, 20, 5, 0, 1, 2)])
    with pytest.raises(EventFileError, match=r"f_bbox.npy: 2 box\(es\) lie entirely outside the 304×240 sensor, the first at t=2"):
        check_boxes_on_sensor(outside, 240, 304, "f_bbox.npy")
    check_boxes_on_sensor(outside[:1], 240, 304, "f_bbox.npy")


@pytest.mark.parametrize("field, value, message", [
    ("t", -1, r"field 't' of box 1 is -1, not a whole number in 0 … 18446744073709551615; 1 box\(es\) have such values"),
    ("class_id", 300, r"field 'class_id' of box 1 \(t=2000 µs\) is 300, not a whole number in 0 … 255"),
    ("x", np.inf, r"field 'x' of box 1 \(t=2000 µs\) is inf, not a finite float32 number"),
])
def test_out_of_range_box_values_are_refused_not_wrapped(tmp_path, field, value, message):
    rows = np.array([(1000, 10, 10, 40, 40, 0, 1, 1.0), (2000, 20, 20, 40, 40, 1, 2, 1.0)], dtype=TOOLBOX_DTYPE)
    rows[field][1] = value
    np.save(tmp_path / "wrap_bbox.npy", rows)
    with pytest.raises(EventFileError, match=message) as info:
        read_boxes(tmp_path / "wrap_bbox.npy")
    assert str(tmp_path / "wrap_bbox.npy") in str(info.value)
    rows[field][1] = {"t": 2000, "class_id": 1, "x": 20}[field]
    np.save(tmp_path / "fine_bbox.npy", rows)
    assert read_boxes(tmp_path / "fine_bbox.npy")["class_id"].tolist() == [0, 1]  # the same file, in range, reads


def test_box_values_of_other_types(tmp_path):
    floats = np.array([(1000.0, 1, 2, 3, 4, 0.0, 1.0, 7.0)], dtype=[(n, "f8") for n in TOOLBOX_DTYPE.names])
    np.save(tmp_path / "f_bbox.npy", floats)
    back = read_boxes(tmp_path / "f_bbox.npy")  # whole numbers stored as floats are exact: accepted
    assert back["t"].tolist() == [1000] and back["track_id"].tolist() == [1]
    floats["t"] = 1000.5
    np.save(tmp_path / "half_bbox.npy", floats)
    with pytest.raises(EventFileError, match=r"half_bbox.npy: field 't' of box 0 is 1000.5, not a whole number"):
        read_boxes(tmp_path / "half_bbox.npy")
    floats["t"], floats["w"] = 1000, 1e39  # too large for the float32 of the box files
    np.save(tmp_path / "huge_bbox.npy", floats)
    with pytest.raises(EventFileError, match=r"huge_bbox.npy: field 'w' of box 0 \(t=1000 µs\) is 1e\+39, not a finite float32"):
        read_boxes(tmp_path / "huge_bbox.npy")
    text = np.array([("a", 1, 2, 3, 4, 0, 1)], dtype=[("t", "U3"), *[(n, "f4") for n in "xywh"], ("class_id", "u1"),
                                                       ("track_id", "u4")])
    np.save(tmp_path / "text_bbox.npy", text)
    with pytest.raises(EventFileError, match=r"text_bbox.npy: field 't' holds <U3 values, not numbers"):
        read_boxes(tmp_path / "text_bbox.npy")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        dat = write_dat(tmp_path / "u_td.dat", np.array(EVENTS[:2], dtype=EVENT_DTYPE))
        box = write_boxes(tmp_path / "u_bbox.npy", _boxes([(1, 0, 0, 5, 4, 0, 1, 0)]))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(dat.stat().st_mode) == mode and stat.S_IMODE(box.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u_bbox.npy", "u_td.dat"]  # no scratch file left


def test_yolo_rows_reference_rule():
    W, H = 304, 240
    boxes = _boxes([
        (5, -10, 20, 50, 40, 0, 1, 1),     # sticks out left: shifted to x=0 (reference), not cut
        (5, 280, 200, 50, 60, 1, 1, 2),    # sticks out right/bottom: centre clamped to the edge
        (5, 0, 0, 30, 30, 0, 1, 4),
        (5, 1, 1, 30, 30, 0, 1, 4),        # same track as the row before: this later row wins
        (5, 100, 100, 0, 10, 0, 1, 3),     # empty: dropped
    ])
    rows = yolo_rows(boxes, H, W)
    expected = [[0, 25 / W, 40 / H, 50 / W, 40 / H], [1, 304 / W, 230 / H, 50 / W, 60 / H],
                [0, 16 / W, 16 / H, 30 / W, 30 / H]]
    np.testing.assert_array_equal(rows, np.array(expected))
    clipped = yolo_rows(boxes[:2], H, W, rule="clip")
    np.testing.assert_allclose(clipped, [[0, 20 / W, 40 / H, 40 / W, 40 / H], [1, 292 / W, 220 / H, 24 / W, 40 / H]])
    assert yolo_rows(boxes[:0], H, W).shape == (0, 5)  # the reference crashed here
