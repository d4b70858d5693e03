"""Frames of an event window: bin edges, the reference grey frame, polarity counts."""

import numpy as np
import pytest

from spikeyolo.events.dat import EVENT_DTYPE
from spikeyolo.events.representation import EventRepresentation, count_frames, grey_frame


def _events(rows):
    return np.array(rows, dtype=EVENT_DTYPE)


def test_bin_edges_follow_the_reference_loads():
    rep = EventRepresentation(T=2, window_us=250_000)
    assert rep.bin_edges(300_000).tolist() == [50_000, 175_000, 300_000]
    assert EventRepresentation(T=3).bin_edges(250_000).tolist() == [0, 83_333, 166_666, 249_999]  # 250000 // 3
    assert rep.bin_edges(100_000).tolist() == [-150_000, -25_000, 100_000]


def test_grey_frames_bin_by_time_and_last_event_wins():
    ev = _events([
        (49_999, 0, 0, 1),    # before the window
        (50_000, 1, 0, 1),    # bin 0, ON
        (60_000, 2, 0, 1),
        (174_999, 2, 0, 0),   # bin 0, same pixel: OFF wins
        (175_000, 3, 1, 1),   # bin 1
        (299_999, 3, 1, 0),   # bin 1, last: OFF
        (300_000, 4, 1, 1),   # at ts: excluded
    ])
    frames = EventRepresentation(T=2).frames(ev, 300_000, height=2, width=5)
    assert frames.shape == (2, 1, 2, 5) and frames.dtype == np.uint8
    assert frames[0, 0].tolist() == [[127, 255, 0, 127, 127], [127] * 5]
    assert frames[1, 0].tolist() == [[127] * 5, [127, 127, 127, 0, 127]]


def test_grey_frame_many_repeats_keep_the_last():
    ev = _events([(i, 0, 0, i % 2) for i in range(1001)])  # last (i=1000) is OFF
    assert grey_frame(ev, 1, 1)[0, 0] == 0
    assert grey_frame(ev[:1000], 1, 1)[0, 0] == 255
    assert grey_frame(ev[:0], 1, 2).tolist() == [[127, 127]]


def test_count_frames_scale_and_saturate():
    ev = _events([(0, 0, 0, 1)] * 3 + [(0, 1, 0, 0)] * 20 + [(0, 1, 0, 1)])
    frames = count_frames(ev, 1, 2, clip=8)
    assert frames[0].tolist() == [[96, 32]]   # ON: 3 and 1 events, 255/8 per event, rounded
    assert frames[1].tolist() == [[0, 255]]   # OFF: 0 and 20 (saturated at 8)
    assert frames[2].tolist() == [[255, 255]]  # the grey frame: the last event at (1, 0) is ON
    rep = EventRepresentation(kind="counts", T=1, window_us=10)
    assert rep.frames(ev, 1, 1, 2).shape == (1, 3, 1, 2)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="representation 'voxels'"):
        EventRepresentation(kind="voxels")
    with pytest.raises(ValueError, match="time_order"):
        EventRepresentation(time_order="backwards")
    with pytest.raises(ValueError, match="T >= 1"):
        EventRepresentation(T=0)
