"""Recorded facts about the reference implementation, shipped with the tests in ``tests/data/reference``.

Each ``state_dict_*.json`` holds one released model's state-dict layout (keys, shapes, dtypes,
buffers), parameter counts, strides, per-layer shapes and the globals its pickles reference, as
recorded from the reference code. They are data, read by the layout and import tests.
"""

import json
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"


def reference_layout(name: str) -> dict:
    """The recorded layout ``name`` (e.g. ``state_dict_snn_yolov8n.json``); a missing file is an error, never a skip."""
    return json.loads((REFERENCE_DIR / name).read_text())
