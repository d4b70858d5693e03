"""BatchNorm recalibration: the running statistics become the average of the per-batch statistics.

The expected statistics are computed here from each BatchNorm's captured inputs with ``torch.mean`` /
``torch.var``, in float64, never through the code under test.
"""

from copy import deepcopy

import pytest
import torch
from short_training import launched_worker, run_keeping_epoch1, train_args
from torch import nn

from spikeyolo import SpikeYOLO
from spikeyolo.cfg import load_model_yaml, model_yaml_file
from spikeyolo.commands.cli import main, run_script
from spikeyolo.engine import bn_recalibration
from spikeyolo.engine.bn_recalibration import recalibrate_bn
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.reparam import BNAndPadLayer


def _norms(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def _expected_statistics(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per BN: the mean over calls of its input's per-channel mean and unbiased variance, in float64.

    The model runs as the recalibration specifies: eval mode, BNs normalising with the batch's own
    statistics (training mode), and BN-and-pad borders equal to that batch's zero response, which
    momentum 1 gives (the border reads the running statistics right after the BN call).
    """
    model = deepcopy(model).eval()
    inputs: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, bn in _norms(model).items():
        bn.train()
        bn.momentum = 1.0
        hooks.append(bn.register_forward_pre_hook(lambda m, args, name=name: inputs.setdefault(name, []).append(args[0])))
    with torch.no_grad():
        for x in batches:
            model(x)
    for hook in hooks:
        hook.remove()
    expected = {}
    for name, calls in inputs.items():
        per_call = [x.double().transpose(0, 1).flatten(1) for x in calls]  # [C, T·B·H·W]
        means = torch.stack([torch.mean(v, dim=1) for v in per_call])
        variances = torch.stack([torch.var(v, dim=1, correction=1) for v in per_call])
        expected[name] = (means.mean(0), variances.mean(0))
    return expected


@pytest.fixture(scope="module")
def wrong_model() -> SpikeDetectionModel:
    """SpikeYOLO-n whose every running mean is 3 and running variance 40, far from any batch's."""
    torch.manual_seed(0)
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    for bn in _norms(model).values():
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(40.0)
    return model


@pytest.fixture(scope="module")
def batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.rand(2, 3, 64, 64, generator=generator) for _ in range(3)]


def test_running_statistics_become_the_average_batch_statistics(wrong_model, batches):
    model = deepcopy(wrong_model)
    expected = _expected_statistics(model, batches)
    assert recalibrate_bn(model, iter(batches)) == 3
    norms = _norms(model)
    assert len(expected) == len(norms) == 123  # every BN of SpikeYOLO-n was reached
    for name, bn in norms.items():
        mean, var = expected[name]
        torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-5, atol=1e-6, msg=name)
        assert not torch.allclose(bn.running_var, torch.full_like(bn.running_var, 40.0))


def test_the_pad_border_follows_the_recalibrated_statistics(wrong_model, batches):
    model = deepcopy(wrong_model)
    expected = _expected_statistics(model, batches)
    recalibrate_bn(model, iter(batches))
    names = {m: n for n, m in model.named_modules()}
    pads = [m for m in model.modules() if isinstance(m, BNAndPadLayer)]
    assert pads
    for pad in pads:
        mean, var = expected[names[pad.bn]]
        border = pad.bn.bias.double() - mean * pad.bn.weight.double() / torch.sqrt(var + pad.bn.eps)
        torch.testing.assert_close(pad.border_value().double(), border, rtol=1e-5, atol=1e-6)


def test_time_merged_inputs_count_every_time_step():
    """A BN fed ``[T·B, C, H, W]`` (T = 3 repeated frames scaled 1, 2, 3) averages over all of them."""
    bn = nn.BatchNorm2d(2)
    x = torch.randn(4, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    merged = torch.cat([x, 2 * x, 3 * x])
    recalibrate_bn(bn, [merged])
    flat = merged.double().transpose(0, 1).flatten(1)
    torch.testing.assert_close(bn.running_mean.double(), flat.mean(1), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(bn.running_var.double(), flat.var(1), rtol=1e-6, atol=1e-7)


def test_weights_modes_and_momenta_are_restored(wrong_model, batches):
    model = deepcopy(wrong_model).train()
    head = model.model[-1].eval()  # a mixed state must come back as it was
    params = {k: v.clone() for k, v in model.named_parameters()}
    momenta = {name: (bn.momentum, int(bn.num_batches_tracked)) for name, bn in _norms(model).items()}
    recalibrate_bn(model, batches)
    assert all(torch.equal(v, params[k]) for k, v in model.named_parameters())
    assert {name: (bn.momentum, int(bn.num_batches_tracked)) for name, bn in _norms(model).items()} == momenta
    assert model.training and not head.training and not any(m.training for m in head.modules())
    assert all(m.training for m in model.model[0].modules())


def test_an_error_leaves_the_statistics_as_they_were(wrong_model):
    model = deepcopy(wrong_model)

    def failing():
        yield torch.rand(1, 3, 64, 64)
        raise RuntimeError("loader failed")

    with pytest.raises(RuntimeError, match="loader failed"):
        recalibrate_bn(model, failing())
    with pytest.raises(ValueError, match="no batch"):
        recalibrate_bn(model, [])
    for bn in _norms(model).values():
        assert torch.all(bn.running_mean == 3.0) and torch.all(bn.running_var == 40.0)
        assert bn.training and bn.momentum != 1.0


def test_a_fused_model_is_refused(wrong_model):
    fused = deepcopy(wrong_model).eval().fuse(verbose=False)
    with pytest.raises(ValueError, match="no BatchNorm"):
        recalibrate_bn(fused, [torch.rand(1, 3, 64, 64)])


def test_train_and_val_commands_recalibrate(tiny_data, session_dir, monkeypatch, capsys):
    """``bn_recalibrate=2`` through train.py and test.py: every epoch's EMA and the validated model get
    two training batches of the run's batch size, and best.pt keeps the EMA's recalibrated statistics."""
    calls = []

    def recording(model, batches):
        batches = list(batches)
        used = recalibrate_bn(model, batches)
        calls.append({"shapes": [tuple(b.shape) for b in batches],
                      "stats": {n: bn.running_var.clone() for n, bn in _norms(model).items()}})
        return used

    monkeypatch.setattr(bn_recalibration, "recalibrate_bn", recording)
    project = session_dir / "runs-bn"
    code = run_script("train", "train.py", [
        f"data={tiny_data}", "epochs=2", "imgsz=64", "batch=4", "workers=0", "plots=False", "warmup_epochs=0",
        "bn_recalibrate=2", f"project={project}", "name=train", "exist_ok=True"])
    assert code == 0
    assert [c["shapes"] for c in calls] == [[(4, 3, 96, 96)] * 2] * 2  # rect validation letterbox: 64 px + half a stride
    best = _norms(SpikeYOLO(project / "train" / "weights" / "best.pt").model)

    def saved_from(call: dict) -> bool:  # best.pt stores the EMA in float16
        return all(torch.allclose(bn.running_var.float(), call["stats"][name], rtol=2e-3, atol=1e-4)
                   for name, bn in best.items())

    assert any(saved_from(c) for c in calls)

    calls.clear()
    capsys.readouterr()
    code = run_script("val", "test.py", [
        f"model={project / 'train' / 'weights' / 'best.pt'}", f"data={tiny_data}", "imgsz=64", "batch=8",
        "bn_recalibrate=2", f"project={project}", "name=val", "exist_ok=True", "plots=False"])
    assert code == 0
    assert [c["shapes"] for c in calls] == [[(8, 3, 96, 96)] * 2]
    assert "mAP50" in capsys.readouterr().out


def _recording(monkeypatch) -> list[int]:
    """Replace the recalibration the trainer calls with one recording how many batches it got."""
    calls = []

    def recording(model, batches):
        calls.append(recalibrate_bn(model, batches))
        return calls[-1]

    monkeypatch.setattr(bn_recalibration, "recalibrate_bn", recording)
    return calls


def test_checkpoints_carry_it_and_a_resumed_run_recalibrates(tiny_data, tmp_path, monkeypatch, capsys):
    """A model config key: best.pt and last.pt keep it, so a run killed after epoch 1 and resumed
    (without giving it again) recalibrates its remaining epoch, and ``spikeyolo info`` shows it."""
    calls = _recording(monkeypatch)
    _, epoch1 = run_keeping_epoch1(tmp_path, bn_recalibrate=2, **train_args(tiny_data, tmp_path, "run", epochs=2))
    assert calls == [2, 2]
    assert SpikeYOLO(epoch1).model.yaml["bn_recalibrate"] == 2
    calls.clear()
    resumed = SpikeYOLO(epoch1)
    resumed.train(resume=True)
    assert resumed.trainer.start_epoch == 1 and calls == [2]
    capsys.readouterr()
    assert main(["info", f"model={resumed.trainer.best}"]) == 0
    assert "spike_budget: 0, bn_recalibrate: 2, precision: fp32" in capsys.readouterr().out


def test_zero_turns_a_checkpoints_recalibration_off(tiny_data, tmp_path, monkeypatch):
    calls = _recording(monkeypatch)
    config = tmp_path / "snn_yolov8n-bn.yaml"  # a model config of one's own that sets it
    config.write_text(model_yaml_file("snn_yolov8n.yaml").read_text() + "bn_recalibrate: 2\n")
    model = SpikeYOLO(config)
    assert model.model.yaml["bn_recalibrate"] == 2
    model.train(bn_recalibrate=0, **train_args(tiny_data, tmp_path, "off"))
    assert calls == [] and SpikeYOLO(model.trainer.last).model.yaml["bn_recalibrate"] == 0


def test_ddp_workers_receive_it(tiny_data, tmp_path, monkeypatch):
    """ultralytics' launcher rebuilds the trainer from its arguments but hands over the model, which carries it."""
    state, worker = launched_worker(train_args(tiny_data, tmp_path, "ddp"), {"bn_recalibrate": 3}, monkeypatch)
    assert "bn_recalibrate" not in state["args"] and worker.model.yaml["bn_recalibrate"] == 3


BAD = [-1, 2.5, "abc", True, None, float("nan")]
RULE = "bn_recalibrate must be a whole number of training batches, 0 or more"


@pytest.mark.parametrize("bad", BAD)
def test_bad_value_fails_before_training(bad, tmp_path):
    with pytest.raises(ValueError, match=RULE):
        SpikeYOLO("snn_yolov8n.yaml").train(bn_recalibrate=bad, project=str(tmp_path))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("bad", BAD)
def test_bad_value_in_a_model_config_names_the_file(bad):
    with pytest.raises(ValueError, match=rf"model config .*snn_yolov8n.yaml: {RULE} \(0 = off, e.g. 4\), got {bad!r}"):
        SpikeDetectionModel({**load_model_yaml("snn_yolov8n.yaml"), "bn_recalibrate": bad}, verbose=False)


@pytest.mark.parametrize(("mode", "bad"), [("train", "abc"), ("train", "-2"), ("val", "-1"), ("val", "1.5")])
def test_bad_value_on_the_command_line(mode, bad, capsys, tmp_path):
    argv = [mode, f"bn_recalibrate={bad}", f"project={tmp_path}"] + (["model=missing.pt"] if mode == "val" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spikeyolo {mode}: error: {RULE}") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())
