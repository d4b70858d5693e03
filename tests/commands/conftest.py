"""Fixtures of the command tests: a small SpikeYOLO checkpoint that detects something."""

from pathlib import Path

import pytest
import torch
from firing_weights import perturb_batchnorms

from spikeyolo.nn import SpikeDetectionModel


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, tiny_data) -> Path:
    """A 4-class SpikeYOLO-n whose neurons fire, saved as an ultralytics checkpoint.

    Untrained BatchNorm statistics leave the network silent and predictions empty; the
    perturbed ones give boxes (at a low ``conf``) so annotated outputs can be checked.
    """
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    perturb_batchnorms(model, seed=2)
    model.names = {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"}
    path = tmp_path_factory.mktemp("cli") / "tiny.pt"
    torch.save({"model": model.half(), "train_args": {"imgsz": 64, "data": str(tiny_data)}}, path)
    return path
