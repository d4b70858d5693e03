"""Initialisation schemes: firing at init, unchanged layout, checkpoints unaffected by the scheme."""

from copy import deepcopy

import pytest
import torch
import yaml

from spikeyolo import SpikeYOLO
from spikeyolo.checkpoints import convert_reference_checkpoint
from spikeyolo.cfg import model_yaml_file
from spikeyolo.nn import ILIF, SpikeDetectionModel
from spikeyolo.nn.init import FIRING_BN_BIAS, apply_init, neuron_input_norms, residual_branch_norms

from checkpoints.reference_format import save_reference_checkpoint

# Bounds on the median share of firing outputs over the 88 neuron layers, one fixed batch.
# Train mode (what the optimiser sees): BatchNorm makes a BN-fed membrane ~N(beta, 1), which fires
# (rounds to >= 1) when it exceeds 0.5: P = Phi(beta - 0.5) = 0.31 for the reference beta = 0 and
# 0.50 for beta = 0.5; 0.4 sits between the two with margin for sampling noise (a few thousand
# elements per layer). Eval mode (what the validator sees): the initial running statistics
# (mean 0, var 1) leave the membrane at beta plus a small conv output, so the reference is
# silent almost everywhere and the firing init fires about half the time; 0.25 separates them.
TRAIN_MEDIAN_BOUND = 0.4
EVAL_MEDIAN_BOUND = 0.25


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    reference = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False, init="reference")
    torch.manual_seed(0)
    firing = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    return {"reference": reference, "firing": firing}


def _firing_shares(model, train_mode: bool) -> list[float]:
    """Share of outputs > 0 per I-LIF layer for a fixed random batch [2, 3, 64, 64] (BN stats untouched)."""
    model = deepcopy(model).train(train_mode)
    shares = []
    hooks = [m.register_forward_hook(lambda mod, i, o: shares.append((o > 0).float().mean().item()))
             for m in model.modules() if isinstance(m, ILIF)]
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    for h in hooks:
        h.remove()
    assert len(shares) == 88
    return shares


def test_firing_init_is_the_default_and_fires(models):
    train = _firing_shares(models["firing"], True)
    evals = _firing_shares(models["firing"], False)
    assert torch.tensor(train).median() > TRAIN_MEDIAN_BOUND
    assert torch.tensor(evals).median() > EVAL_MEDIAN_BOUND
    assert min(evals) > 0  # no silent layer, the reference has 76 of 88


def test_reference_init_stays_below_the_bounds(models):
    train = _firing_shares(models["reference"], True)
    evals = _firing_shares(models["reference"], False)
    assert torch.tensor(train).median() < TRAIN_MEDIAN_BOUND
    assert torch.tensor(evals).median() < EVAL_MEDIAN_BOUND
    assert sum(s == 0 for s in evals) > 44


def test_same_layout_and_only_the_two_bn_groups_differ(models):
    ref, fir = models["reference"].state_dict(), models["firing"].state_dict()
    assert [(k, v.shape, v.dtype) for k, v in ref.items()] == [(k, v.shape, v.dtype) for k, v in fir.items()]
    changed = {k for k in ref if not torch.equal(ref[k], fir[k])}
    names = {m: n for n, m in models["firing"].named_modules()}
    shifted = {f"{names[bn]}.bias" for bn in neuron_input_norms(models["firing"])}
    zeroed = {f"{names[bn]}.weight" for bn in residual_branch_norms(models["firing"])}
    assert changed == shifted | zeroed and (len(shifted), len(zeroed)) == (54, 24)
    assert all(torch.all(fir[k] == FIRING_BN_BIAS) for k in shifted) and all(torch.all(fir[k] == 0) for k in zeroed)


def test_scheme_from_yaml_key_and_argument(tmp_path, models):
    cfg = yaml.safe_load(model_yaml_file("snn_yolov8n.yaml").read_text())
    cfg["init"] = "reference"
    path = tmp_path / "snn_yolov8n.yaml"
    path.write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    from_yaml = SpikeDetectionModel(str(path), nc=4, verbose=False)
    assert all(torch.equal(a, b) for a, b in zip(from_yaml.state_dict().values(), models["reference"].state_dict().values()))
    with pytest.raises(ValueError, match="unknown init scheme"):
        apply_init(from_yaml, "kaiming")


def test_reference_checkpoint_loads_unchanged_under_the_firing_init(models, tmp_path):
    source = deepcopy(models["reference"])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # FP16-exact values: the reference format stores half precision
        for t in source.state_dict().values():
            if t.is_floating_point():
                t.copy_((torch.randn(t.shape, generator=g) * 0.1).half().float())
    path = save_reference_checkpoint(tmp_path / "23M_best.pt", source, {i: f"c{i}" for i in range(4)}, ema=None)
    expected = source.state_dict()
    # Conversion builds a fresh model (firing init) and loads the reference tensors into it.
    converted = SpikeYOLO(str(convert_reference_checkpoint(path, tmp_path / "converted.pt"))).model
    assert all(torch.equal(converted.state_dict()[k], v) for k, v in expected.items())
