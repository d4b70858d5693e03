"""The spikeyolo console command: modes, key=value grammar, clear errors, end to end on a tiny model."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikeyolo.cli import main
from spikeyolo.nn import SpikeDetectionModel


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_data):
    """An untrained 4-class SpikeYOLO-n saved as an ultralytics checkpoint."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    model.names = {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"}
    path = tmp_path_factory.mktemp("cli") / "tiny.pt"
    torch.save({"model": model.half(), "train_args": {"imgsz": 64, "data": str(tiny_data)}}, path)
    return path


def test_help_and_console_script():
    script = shutil.which("spikeyolo", path=str(Path(sys.executable).parent))
    assert script, "the spikeyolo console script is installed with the package"
    r = subprocess.run([script, "help"], capture_output=True, text=True, timeout=120, env=os.environ)
    assert r.returncode == 0 and "spikeyolo predict model=best.pt" in r.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trian"], "did you mean 'train'"),
        (["val", "model=x.pt", "epoch=3"], "epochs"),
        (["predict", "source=img.jpg"], "give the model"),
        (["export", "format=engine", "model=x.pt"], "not supported for spiking models"),
        (["convert", "missing.pt", "out.pt"], "error"),
    ],
)
def test_user_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_predict_missing_source_and_wrong_model(checkpoint, tmp_path, capsys):
    assert main(["predict", f"model={checkpoint}", f"source={tmp_path / 'none.jpg'}"]) == 2
    assert "not found" in capsys.readouterr().err
    stock = tmp_path / "stock.pt"
    from ultralytics.nn.tasks import DetectionModel

    torch.save({"model": DetectionModel("yolov8n.yaml", nc=2, verbose=False)}, stock)
    assert main(["predict", f"model={stock}", f"source={tmp_path}"]) == 2  # a model of another kind
    assert "holds an ultralytics DetectionModel, not a SpikeYOLO" in capsys.readouterr().err


def test_predict_spike_driven_and_export(checkpoint, tiny_data, tmp_path):
    folder = tiny_data.parent / "images" / "val"
    assert main(["predict", f"model={checkpoint}", f"source={folder}", "imgsz=64", "save=True",
                 f"project={tmp_path}", "name=pred", "spike_driven=True"]) == 0
    assert len(list((tmp_path / "pred").glob("*.jpg"))) == len(list(folder.glob("*.jpg")))
    assert main(["export", f"model={checkpoint}", "format=onnx", "imgsz=64"]) == 0
    assert checkpoint.with_suffix(".onnx").is_file()
