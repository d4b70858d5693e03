"""Spike-budget training (``spikeyolo.engine.spike_budget``): the penalty, its gradient, the ``spike_budget`` option.

The penalty must be the energy report's synaptic operations (computed there independently, from a
firing-rate monitor's rates and the report's own charges), must lower firing when followed, and with
λ = 0 must leave training bit for bit as without the option.
"""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from short_training import launched_worker, run_keeping_epoch1
from short_training import train_args as short_train_args
from ultralytics.utils import DEFAULT_CFG
from ultralytics.utils.loss import v8DetectionLoss

from spikeyolo import SpikeYOLO
from spikeyolo.analysis import FiringRateMonitor, energy_report
from spikeyolo.cfg import load_model_yaml
from spikeyolo.commands.cli import main
from spikeyolo.engine.spike_budget import LOSS_NAME, SOP_UNIT, SpikeBudgetLoss, install_spike_budget
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.neuron import ILIF

BUDGET = 0.05


def budget_model(budget: float = BUDGET, cfg: str = "snn_yolov8n.yaml") -> SpikeDetectionModel:
    """A 3-class model whose config sets ``spike_budget``, with its criterion installed as the trainer does."""
    torch.manual_seed(0)
    model = SpikeDetectionModel({**load_model_yaml(cfg), "spike_budget": budget}, nc=3, verbose=False)
    model.args = DEFAULT_CFG  # the loss gains, as the trainer attaches them
    install_spike_budget(model)
    return model


@pytest.fixture(scope="module")
def model() -> SpikeDetectionModel:
    return budget_model()


def images(n: int, size: int, seed: int = 0, frames: int | None = None) -> torch.Tensor:
    shape = (n, frames, 3, size, size) if frames else (n, 3, size, size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def batch_of(x: torch.Tensor) -> dict:
    """Two labelled boxes on the first two images (normalised xywh), as ultralytics' loader gives them."""
    return {"img": x, "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([[0.0], [2.0]]),
            "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.3], [0.3, 0.6, 0.2, 0.4]])}


@pytest.mark.parametrize("size", [64, 96])
def test_penalty_is_the_energy_reports_sops(model, size):
    """The fan-outs are measured at 64 px; at 96 px the penalty still equals the report's SOPs at 96 px."""
    assert_penalty_is_the_reports_sops(model, images(3, size), size)


def test_penalty_is_the_energy_reports_sops_for_event_frames():
    """Gen1 model (layer 0 repeats images T = 2 times), fed 3 event frames: the data's T counts."""
    assert_penalty_is_the_reports_sops(budget_model(cfg="snn_yolov8n-gen1.yaml"), images(2, 64, frames=3), 64, 3)


def assert_penalty_is_the_reports_sops(model: SpikeDetectionModel, x: torch.Tensor, size: int,
                                       frames: int | None = None) -> None:
    model.eval()
    try:
        with torch.no_grad(), FiringRateMonitor(model) as monitor:
            model(x)
        penalty = float(model.criterion.penalty())
    finally:
        model.train()
    sops = energy_report(model, monitor, size, frames=frames).totals["sops"]  # per image: Σ rate × T × MACs
    assert sops > 0
    assert penalty * size * size * SOP_UNIT == pytest.approx(sops, rel=1e-6)


def test_loss_adds_the_sop_term_and_item(model):
    """Terms ``[4]`` scaled by the batch size as ultralytics' own, items with ``sop_loss`` last; detection terms untouched."""
    x = images(2, 64)
    loss, items = model.loss(batch_of(x))
    assert list(items) == ["box_loss", "cls_loss", "dfl_loss", LOSS_NAME] and loss.shape == (4,)
    assert loss[3].requires_grad and float(items[LOSS_NAME]) > 0
    assert float(loss[3].detach()) == pytest.approx(2 * float(items[LOSS_NAME]), rel=1e-6)
    detection, _ = model.criterion.detection(model(x), batch_of(x))
    assert torch.equal(loss[:3].detach(), detection.detach())


def test_a_loss_without_a_hooked_forward_is_an_error(model):
    model.loss(batch_of(images(2, 64)))
    with pytest.raises(RuntimeError, match="recorded no counts"):
        model.criterion.penalty()  # that loss consumed its forward's counts


def test_penalty_gradient_lowers_firing():
    """5 SGD steps on the penalty alone, on a fixed batch: the training-mode mean rate drops by a fifth or more.

    The rate is the firing-rate monitor's (element-weighted, as ``spikeyolo val`` reports it), not the
    penalty's SOP weighting; lr 1 because a mean over all counts has a small gradient per weight.
    """
    model = budget_model()
    x = images(4, 64, seed=1)

    def mean_rate() -> float:
        with torch.no_grad(), FiringRateMonitor(model) as monitor:
            model(x)
        model.criterion.tally.rates()  # the monitored forward's counts: not a loss
        return monitor.summary()["mean_rate"]

    before = mean_rate()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(5):
        model(x)
        optimizer.zero_grad()
        model.criterion.penalty().backward()
        optimizer.step()
    after = mean_rate()
    assert after < 0.8 * before, (before, after)


def test_zero_budget_trains_bit_identically(tiny_data, tmp_path):
    """λ = 0 (given) against no option: same losses, same trained and EMA weights, no hooks, no extra item."""
    runs = {}
    for name, option in (("plain", {}), ("zero", {"spike_budget": 0})):
        model = SpikeYOLO("snn_yolov8n.yaml")
        model.train(**train_args(tiny_data, tmp_path, name), **option)
        runs[name] = model
    plain, zero = runs["plain"].trainer, runs["zero"].trainer
    assert type(zero.model.criterion) is v8DetectionLoss and zero.loss_names == plain.loss_names
    assert not any(m._forward_hooks for m in zero.model.modules() if isinstance(m, ILIF))
    for a, b in ((plain.model, zero.model), (plain.ema.ema, zero.ema.ema)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert losses(plain.csv) == losses(zero.csv)


def train_args(data: Path, project: Path, name: str, epochs: int = 1) -> dict:
    return short_train_args(data, project, name, epochs, warmup_epochs=0)


def losses(results_csv: Path) -> list[dict]:
    with open(results_csv) as f:
        return [{k.strip(): v for k, v in row.items() if "loss" in k} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def budget_run(tiny_data, tmp_path_factory) -> tuple[SpikeYOLO, Path]:
    """2 epochs with ``spike_budget=BUDGET``; the model and a copy of epoch 1's checkpoint."""
    project = tmp_path_factory.mktemp("spike_budget")
    return run_keeping_epoch1(project, spike_budget=BUDGET, **train_args(tiny_data, project, "budget", epochs=2))


def test_training_shows_the_sop_loss_and_saves_the_budget(budget_run):
    model, _ = budget_run
    trainer = model.trainer
    assert trainer.loss_names == ("box_loss", "cls_loss", "dfl_loss", LOSS_NAME)
    rows = losses(trainer.csv)
    assert len(rows) == 2 and all(float(r[f"train/{LOSS_NAME}"]) > 0 and float(r[f"val/{LOSS_NAME}"]) > 0 for r in rows)
    for model_ in (trainer.model, trainer.ema.ema):  # the EMA validates with it too; its hooks are back after saving
        assert isinstance(model_.criterion, SpikeBudgetLoss) and model_.criterion.tally._handles
    for path in (trainer.last, trainer.best):
        checkpoint = torch.load(path, weights_only=False)
        saved = checkpoint["ema"] or checkpoint["model"]  # the final ones keep the EMA as "model"
        assert saved.yaml["spike_budget"] == BUDGET and saved.criterion is None
        assert not any(m._forward_hooks for m in saved.modules())
        assert SpikeYOLO(path).model.yaml["spike_budget"] == BUDGET  # through the restricted checkpoint check


def test_info_shows_the_budget(budget_run, capsys):
    assert main(["info", f"model={budget_run[0].trainer.best}"]) == 0
    assert f"spike_budget: {BUDGET:g}," in capsys.readouterr().out


def test_resume_keeps_the_budget(budget_run):
    _, resumable = budget_run
    model = SpikeYOLO(resumable)
    model.train(resume=True, spike_budget=1.0)  # ignored, as ultralytics ignores changed arguments on resume
    assert model.trainer.start_epoch == 1
    criterion = model.trainer.model.criterion
    assert isinstance(criterion, SpikeBudgetLoss) and criterion.budget == BUDGET


def test_zero_turns_a_checkpoints_budget_off(budget_run, tiny_data, tmp_path):
    model, _ = budget_run
    tuned = SpikeYOLO(model.trainer.best)
    tuned.train(spike_budget=0, **train_args(tiny_data, tmp_path, "off"))
    assert type(tuned.trainer.model.criterion) is v8DetectionLoss
    assert SpikeYOLO(tuned.trainer.last).model.yaml["spike_budget"] == 0


def test_ddp_workers_receive_the_budget(tiny_data, tmp_path, monkeypatch):
    """ultralytics' launcher hands the workers ``trainer.model``, which carries the budget in its config."""
    state, worker = launched_worker(train_args(tiny_data, tmp_path, "ddp"), {"spike_budget": BUDGET}, monkeypatch)
    assert "spike_budget" not in state["args"] and state["model"].yaml["spike_budget"] == BUDGET
    (criterion,) = install_spike_budget(worker.model)  # what the worker's _setup_train does
    assert criterion.budget == BUDGET


BAD = [-1, "abc", math.nan, math.inf, True]


@pytest.mark.parametrize("bad", BAD)
def test_bad_budget_fails_before_training(bad, tmp_path):
    with pytest.raises(ValueError, match=r"spike_budget must be a non-negative finite number"):
        SpikeYOLO("snn_yolov8n.yaml").train(spike_budget=bad, project=str(tmp_path))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("bad", BAD)
def test_bad_budget_in_the_model_config_fails_at_construction(bad):
    with pytest.raises(ValueError, match=r"spike_budget must be a non-negative finite number"):
        SpikeDetectionModel({**load_model_yaml("snn_yolov8n.yaml"), "spike_budget": bad}, verbose=False)


@pytest.mark.parametrize("bad", ["-1", "abc", "nan"])
def test_bad_budget_on_the_command_line(bad, capsys):
    assert main(["train", f"spike_budget={bad}"]) == 2
    err = capsys.readouterr().err
    assert "spikeyolo train: error: spike_budget must be a non-negative finite number" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_trade_off_bench_at_tiny_size(tmp_path):
    """``bench/spike_budget.py``: one run appends its record, ``--collect`` prints the table and plots it."""
    bench = [sys.executable, str(Path(__file__).resolve().parents[2] / "bench" / "spike_budget.py")]
    sizes = ["--epochs", "1", "--n-train", "16", "--n-val", "8", "--imgsz", "64", "--out", str(tmp_path)]
    subprocess.run([*bench, "--runs", "firing:0.1", *sizes], check=True, capture_output=True, timeout=600)
    done = subprocess.run([*bench, "--collect", *sizes, "--plot", str(tmp_path / "trade_off.png")], check=True,
                          capture_output=True, text=True, timeout=300)
    (record,) = map(json.loads, (tmp_path / "spike_budget.jsonl").read_text().splitlines())
    assert record["init"] == "firing" and record["spike_budget"] == 0.1 and record["sops"] > 0
    assert "| firing | 0.1 |" in done.stdout and (tmp_path / "trade_off.png").stat().st_size > 0
