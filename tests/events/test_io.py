"""Gen1 .dat and _bbox.npy I/O against files written byte by byte from the format description."""

import struct

import numpy as np
import pytest

from spikeyolo.events.dat import EVENT_DTYPE, DatFile, write_dat
from spikeyolo.events.errors import EventFileError
from spikeyolo.events.labels import BOX_DTYPE, check_boxes_on_sensor, read_boxes, write_boxes, yolo_rows

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
    with pytest.raises(EventFileError, match=r"plain_bbox.npy: not a Gen1 box array .*missing \['t/ts'"):
        read_boxes(tmp_path / "plain_bbox.npy")
    write_boxes(tmp_path / "neg_bbox.npy", _boxes([(1, 0, 0, -5, 4, 0, 1, 0)]))
    with pytest.raises(EventFileError, match=r"neg_bbox.npy: box 0 at t=1 µs is invalid"):
        read_boxes(tmp_path / "neg_bbox.npy")
    with pytest.raises(EventFileError, match="none_bbox.npy: label file not found"):
        read_boxes(tmp_path / "none_bbox.npy")
    outside = _boxes([(1, 10, 10, 5, 5, 0, 1, 0), (2, 310, 10, 5, 5, 0, 1, 1), (3, -20, 10, 20, 5, 0, 1, 2)])
    with pytest.raises(EventFileError, match=r"f_bbox.npy: 2 box\(es\) lie entirely outside the 304×240 sensor, the first at t=2"):
        check_boxes_on_sensor(outside, 240, 304, "f_bbox.npy")
    check_boxes_on_sensor(outside[:1], 240, 304, "f_bbox.npy")


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
