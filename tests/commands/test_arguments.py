"""key=value arguments of train.py / test.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from spikeyolo.cfg.recipes import DEMO_RECIPE, REFERENCE_RECIPE
from spikeyolo.commands import train as train_command
from spikeyolo.commands.arguments import UsageError, parse_arguments
from spikeyolo.commands.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_values_are_typed():
    assert parse_arguments(["epochs=3", "imgsz=320", "amp=False", "name=run1", "lr0=0.02"]) == {
        "epochs": 3,
        "imgsz": 320,
        "amp": False,
        "name": "run1",
        "lr0": 0.02,
    }


def test_extra_keys_are_checked_against_their_type():
    extra = {"spike_driven": bool, "energy_preset": str, "bn_recalibrate": None}
    assert parse_arguments(["spike_driven=True", "energy_preset=16", "bn_recalibrate=x"], extra) == {
        "spike_driven": True,
        "energy_preset": "16",
        "bn_recalibrate": "x",  # None: the mode checks it by its own rule
    }
    for given, shown in (("abc", "'abc'"), ("1", "1"), ("0.5", "0.5")):
        with pytest.raises(UsageError, match=f"^spike_driven={shown}: expected True or False$"):
            parse_arguments([f"spike_driven={given}"], extra)


@pytest.mark.parametrize(("mode", "key"), [("val", "spike_driven"), ("val", "energy"), ("predict", "spike_driven")])
def test_a_flag_that_is_not_true_or_false_stops_the_command(mode, key, capsys, tmp_path):
    """Before: any string counted as True, so ``energy=maybe`` ran the energy report."""
    assert main([mode, f"model={tmp_path / 'best.pt'}", f"{key}=maybe", f"project={tmp_path}"]) == 2
    assert capsys.readouterr().err == f"spikeyolo {mode}: error: {key}='maybe': expected True or False\n"


def test_unknown_key_suggests_the_close_match():
    with pytest.raises(UsageError, match="epochs"):
        parse_arguments(["epoch=3"])
    with pytest.raises(UsageError, match="key=value"):
        parse_arguments(["epochs"])


def test_train_defaults_demo_recipe_without_data(monkeypatch, tmp_path):
    monkeypatch.setattr(train_command, "default_dataset", lambda: tmp_path / "data.yaml")
    args = train_command.build_train_args(["epochs=2"])
    assert args["data"] == str(tmp_path / "data.yaml") and args["epochs"] == 2
    assert args["model"] == DEMO_RECIPE["model"] and args["imgsz"] == DEMO_RECIPE["imgsz"]


def test_train_uses_reference_recipe_with_data_and_user_wins():
    args = train_command.build_train_args(["data=coco.yaml", "model=snn_yolov8s.yaml", "batch=8"])
    assert args["optimizer"] == "SGD" and args["lrf"] == REFERENCE_RECIPE["lrf"] == 0.004
    assert args["warmup_epochs"] == 10.0 and args["patience"] == 200 and args["batch"] == 8


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("train.py", ["epoch=3"], "epochs"),
        ("train.py", ["data=/nonexistent/data.yaml"], "nonexistent"),
        ("train.py", ["model=snn_yolov8q.yaml", "data=x.yaml"], "snn_yolov8q.yaml"),
        ("test.py", [], "model=path/to/best.pt"),
        ("test.py", ["model=/nonexistent/best.pt"], "not found"),
    ],
)
def test_user_errors_exit_2_without_traceback(script, argv, message):
    r = subprocess.run([sys.executable, str(ROOT / script), *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
