"""Shared synthetic Gen1 recordings and their conversion (small: a few seconds of CPU)."""

from pathlib import Path

import numpy as np
import pytest

from spikeyolo.events.convert import convert_dataset
from spikeyolo.events.synthetic import SyntheticSettings, generate_recordings

TINY = SyntheticSettings(duration_us=1_500_000, label_hz=4.0, objects=4, step_us=4_000)
# The toolbox's own box dtype (src/io/box_loading.py): t is i8 and class_id u4, so a file can hold -1 and 300,
# which the Gen1 files' u8 and u1 (BOX_DTYPE) would wrap into 2**64 - 1 and 44.
TOOLBOX_DTYPE = np.dtype([("t", "<i8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"), ("class_id", "<u4"),
                          ("track_id", "<u4"), ("class_confidence", "<f4")])


@pytest.fixture(scope="session")
def raw_gen1(session_dir) -> Path:
    """3 train and 2 test synthetic recordings of 1.5 s in the Gen1 layout."""
    return generate_recordings(session_dir / "gen1-raw", {"train": 3, "test": 2}, TINY, seed=5, progress=False)


@pytest.fixture(scope="session")
def gen1_data(raw_gen1, session_dir) -> Path:
    """The recordings converted with the Gen1 template (grey, T = 2, 250 ms); returns data.yaml."""
    return convert_dataset(raw_gen1, session_dir / "gen1-T2", workers=2, progress=False).data_yaml
