"""Test session setup: offline ultralytics in a private config dir, shared tiny datasets and runs."""

import os
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="spikeyolo-tests-"))
os.environ["YOLO_CONFIG_DIR"] = str(_SESSION_DIR / "config")
os.environ["SPIKEYOLO_CACHE_DIR"] = str(_SESSION_DIR / "cache")
os.environ["YOLO_VERBOSE"] = "False"

import pytest  # noqa: E402
import torch  # noqa: E402

import spikeyolo  # noqa: E402,F401  (configures the offline environment before ultralytics loads)

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_data() -> Path:
    """A 16/8-image, 64 px synthetic detection dataset (``hard``: up to 6 objects, small ones too, four
    classes; tests count its boxes); returns its data.yaml."""
    from spikeyolo.data import generate_dataset

    return generate_dataset(_SESSION_DIR / "tiny", n_train=16, n_val=8, imgsz=64, seed=1, difficulty="hard",
                            progress=False)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """A directory shared by the whole test session (runs, checkpoints)."""
    return _SESSION_DIR
