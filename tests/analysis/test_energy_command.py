"""``spikeyolo energy`` and ``test.py energy=True``: tables, files and clear errors, end to end on a tiny model."""

import csv
import json
import shutil

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from spikeyolo.analysis import measure_rates_on_images
from spikeyolo.commands.cli import main as cli
from spikeyolo.commands.cli import run_script
from spikeyolo.nn import SpikeDetectionModel
from tests.firing_weights import perturb_batchnorms



@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_data):
    """A 4-class SpikeYOLO-n whose neurons fire (perturbed BatchNorms), saved as an ultralytics checkpoint."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    perturb_batchnorms(model, seed=5)
    model.names = {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"}
    path = tmp_path_factory.mktemp("energy") / "tiny.pt"
    torch.save({"model": model, "train_args": {"imgsz": 64, "data": str(tiny_data)}}, path)
    return path


@pytest.fixture(scope="module")
def val_images(tiny_data):
    return tiny_data.parent / "images" / "val"


def test_energy_on_an_image_folder(checkpoint, val_images, tmp_path, capsys):
    assert cli(["energy", f"model={checkpoint}", f"source={val_images}", "imgsz=50", "batch=3",
                f"project={tmp_path}", "name=run"]) == 0  # 50 is rounded up to the stride, as ultralytics does
    out = capsys.readouterr().out
    assert "89 convolutions at 64×64" in out and "E_ANN/E_SNN" in out and "model.2.Conv" in out
    run = tmp_path / "run"
    report = json.loads((run / "energy.json").read_text())
    rows, totals = report["rows"], report["totals"]
    assert len(rows) == 89 and rows[0]["name"] == "first_layer" and rows[0]["fr"] is None
    assert totals["e_snn_mj"] == pytest.approx(sum(r["e_snn_pj"] for r in rows) / 1e9, rel=1e-12)
    assert totals["e_ann_mj"] == pytest.approx(4.6 * totals["macs"] / 1e9, rel=1e-12)
    assert totals["e_snn_mj"] == pytest.approx((0.9 * totals["sops"] + 4.6 * totals["first_layer_macs"]) / 1e9, rel=1e-12)
    # the rates are those of the images, counted once each, whatever the batch size
    model = torch.load(checkpoint, weights_only=False)["model"].float()
    expected = {r.name: r.rate for r in measure_rates_on_images(model, val_images, 64, batch=8).rates()}
    assert {r["name"]: r["fr"] for r in rows[1:]} == pytest.approx(expected, rel=1e-12)
    assert 0 < max(expected.values()) <= 4
    with (run / "energy.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 89 and float(table[1]["sops"]) == pytest.approx(rows[1]["sops"])
    for png in ("firing_rates.png", "energy.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_py_energy_reports_map_rates_and_energy(checkpoint, tiny_data, tmp_path, capsys):
    code = run_script("val", "test.py", [f"model={checkpoint}", f"data={tiny_data}", "imgsz=64", "batch=8",
                    "energy=True", "energy_preset=int8", f"project={tmp_path}", "name=val"])
    assert code == 0
    out = capsys.readouterr().out
    assert "mAP50" in out and "int8: E_MAC 0.23 pJ, E_AC 0.03 pJ" in out
    pictures = [tmp_path / "val" / name for name in ("val_batch0_pred.jpg", "firing_rates.png", "energy.png")]
    assert out.rstrip().splitlines()[-1] == "look at: " + "  ".join(map(str, pictures))  # the run's last word
    assert all(p.is_file() for p in pictures)
    totals = json.loads((tmp_path / "val" / "energy.json").read_text())["totals"]
    assert totals["preset"] == "int8" and totals["e_ann_mj"] == pytest.approx(0.23 * totals["macs"] / 1e9)
    assert (tmp_path / "val" / "firing_rates.json").is_file() and (tmp_path / "val" / "energy.png").is_file()


def test_template_command_writes_both_modes(tmp_path, capsys):
    template = "snn_yolov8s"
    assert cli(["energy", f"template={template}", "model=snn_yolov8s.yaml", f"project={tmp_path}", "name=sheet"]) == 0
    out = capsys.readouterr().out
    assert "E_ANN 465.57 mJ, E_SNN 34.49 mJ" in out and "E_ANN 480.77 mJ, E_SNN 35.27 mJ" in out
    differences = json.loads((tmp_path / "sheet" / "corrected" / "template_differences.json").read_text())
    assert [d["name"] for d in differences] == ["model.12.Conv.lif3", "model.22.lif1", "model.22.lif2"]
    assert json.loads((tmp_path / "sheet" / "template" / "energy.json").read_text())["totals"]["macs"] == 101_211_340_800


def test_energy_user_errors(checkpoint, val_images, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    stock = tmp_path / "stock.pt"
    torch.save({"model": DetectionModel("yolov8n.yaml", verbose=False)}, stock)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.jpg").write_bytes(b"not a jpeg")
    cases = [
        ([f"source={empty}"], "holds no images"),
        ([f"source={tmp_path / 'missing'}"], "not found"),
        ([f"source={corrupt}"], "none of the 1 images"),
        ([f"source={val_images}", "energy_preset=fp64"], "unknown energy preset 'fp64'"),
        ([f"source={val_images}", "first_layer=free"], "first_layer must be one of"),
        ([f"source={val_images}", "colour=red"], "colour"),
        ([], "give model= and source="),
    ]
    for extra, message in cases:
        assert cli(["energy", f"model={checkpoint}", *extra, f"project={tmp_path}"]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert cli(["energy", f"model={stock}", f"source={val_images}"]) == 2
    assert "not a SpikeYOLO" in capsys.readouterr().err
    assert run_script("val", "test.py", [f"model={checkpoint}", "energy=True", "energy_preset=fp64"]) == 2
    assert "unknown energy preset" in capsys.readouterr().err


def test_unreadable_images_are_skipped_and_named(checkpoint, val_images, tmp_path, caplog):
    mixed = tmp_path / "mixed"
    shutil.copytree(val_images, mixed)
    (mixed / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    model = torch.load(checkpoint, weights_only=False)["model"].float()
    monitor = measure_rates_on_images(model, mixed, 64)
    clean = measure_rates_on_images(model, val_images, 64)
    assert [r.total for r in monitor.rates()] == [r.total for r in clean.rates()]
