"""A block defined only here, by its declarations, is fused, run spike-driven, audited, counted and initialised.

``ToyBlock`` is no copy of a SpikeYOLO block: a grouped 5×5 expansion, then a RepConv back, one
residual sum. Every number is checked against an independent reference (the unfused model, a
brute-force convolution of ones, hand-computed shapes), never against the code under test.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeyolo.analysis import synapse_geometry
from spikeyolo.nn import ILIF, SpikeDetectionModel
from spikeyolo.nn.fuse import is_fused
from spikeyolo.nn.registry import MODULES, register_module
from spikeyolo.nn.reparam import RepConv
from spikeyolo.nn.spiking_block import SpikingBlock
from spikeyolo.nn.temporal import over_time
from spikeyolo.spike import SpikeDrivenConv, spike_driven
from spikeyolo.spike.audit import audit

from firing_weights import perturb_batchnorms


class ToyBlock(SpikingBlock):
    """``x + BN_b(RepConv(N_b(BN_a(Conv k×k/g(N_a(x))))))``, hidden width 2C; ``[T, B, C, H, W]`` → same."""

    synapses = (("lif_a", "conv_a"), ("lif_b", "rep"))
    fusions = (("conv_a", "bn_a"), ("rep", "bn_b"))
    residual_norms = ("bn_b",)
    residual_additions = 1

    def __init__(self, c: int, k: int = 5, groups: int = 2):
        super().__init__()
        self.lif_a, self.lif_b = ILIF(), ILIF()
        self.conv_a = nn.Conv2d(c, 2 * c, k, 1, k // 2, groups=groups, bias=False)
        self.bn_a = nn.BatchNorm2d(2 * c)
        self.rep = RepConv(2 * c, c)
        self.bn_b = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = over_time(self.bn_a, over_time(self.conv_a, self.lif_a(x)))
        return x + over_time(self.bn_b, over_time(self.rep, self.lif_b(y)))


C, T, B, TOY_LAYERS = 16, 2, 2, {2: 16, 4: 8}  # toy layer → its map size in px at 64 px input
YAML = {
    "nc": 2,
    "backbone": [
        [-1, 1, "MS_GetT", [3, T]],
        [-1, 1, "MS_DownSampling", [C, 7, 4, 2, True]],  # 1: 16 px
        [-1, 1, "ToyBlock", [5, 2]],  # 2
        [-1, 1, "MS_DownSampling", [C, 3, 2, 1, False]],  # 3: 8 px (P3)
        [-1, 1, "ToyBlock", [5, 2]],  # 4
        [-1, 1, "MS_DownSampling", [C, 3, 2, 1, False]],  # 5: P4
        [-1, 1, "MS_DownSampling", [C, 3, 2, 1, False]],  # 6: P5
    ],
    "head": [[[4, 5, 6], 1, "SpikeDetect", ["nc"]]],
}


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    register_module("ToyBlock", ToyBlock, lambda c1, args, width, max_channels: (c1, [c1, *args]))
    yield
    del MODULES["ToyBlock"]


@pytest.fixture(scope="module")
def model():
    """float64 (no rounding tie, so spikes match exactly), every neuron driven to fire."""
    torch.manual_seed(0)
    m = SpikeDetectionModel(copy.deepcopy(YAML), verbose=False).eval().double()
    perturb_batchnorms(m)
    return m


def _images():
    return torch.rand(B, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _run(model, x, record=()):
    """Output ``[B, 4 + nc, A]`` and the counts ``[T, B, C, H, W]`` emitted by the neurons named in ``record``."""
    counts = {}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: counts.__setitem__(n, o.clone())) for n in record]
    with torch.no_grad():
        y = model(x)[0]
    for h in hooks:
        h.remove()
    return y, counts


TOY_NEURONS = [f"model.{i}.lif_{s}" for i in TOY_LAYERS for s in "ab"]


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="taken by spikeyolo.nn.blocks.MS_ConvBlock"):
        register_module("MS_ConvBlock", ToyBlock, lambda c1, args, width, max_channels: (c1, [c1, *args]))


def test_fused_toy_equals_unfused(model):
    y0, s0 = _run(model, _images(), TOY_NEURONS)
    assert all(0 < (s > 0).double().mean() < 1 for s in s0.values())  # firing, not saturated: not vacuous
    fused = copy.deepcopy(model).fuse(verbose=False)
    toy = fused.model[2]
    assert is_fused(fused) and not is_fused(model)
    assert not any(isinstance(m, (nn.BatchNorm2d, RepConv)) for m in toy.modules())
    assert isinstance(toy.rep, nn.Sequential) and all(isinstance(c, nn.Conv2d) for c in toy.rep)  # factorised
    y1, s1 = _run(fused, _images(), TOY_NEURONS)
    assert all(torch.equal(s0[n], s1[n]) for n in TOY_NEURONS)
    assert torch.allclose(y0, y1, rtol=1e-9, atol=1e-9)


def test_densified_toy_runs_spike_driven(model):
    fused = copy.deepcopy(model).fuse(verbose=False)
    y_int, _ = _run(fused, _images())
    neurons = sum(isinstance(m, ILIF) for m in fused.modules())
    with spike_driven(fused) as ledger:
        assert sum(isinstance(m, SpikeDrivenConv) for m in fused.modules()) == neurons  # one conv per neuron
        y_spk, _ = _run(fused, _images())
    for i in TOY_LAYERS:
        assert ledger.checked[f"model.{i}.conv_a"] == ledger.checked[f"model.{i}.rep"] == 1  # saw only {0, 1}
        rep = fused.model[i].rep
        assert isinstance(rep, nn.Conv2d) and rep.kernel_size == (3, 3) and rep.bias is not None  # dense
    assert len(ledger.checked) == neurons
    assert torch.allclose(y_int, y_spk, rtol=1e-9, atol=1e-9)


def test_audit_counts_the_toy_synapses_and_residuals(model):
    _, counts = _run(model, _images(), TOY_NEURONS)  # the unfused model's spikes: an independent reference
    rows = audit(model, _images())
    by_op = {(r.module, r.operation): r.count for r in rows}
    for i, px in TOY_LAYERS.items():
        a, b = counts[f"model.{i}.lif_a"].flatten(0, 1), counts[f"model.{i}.lif_b"].flatten(0, 1)
        # one addition per binary spike per output it reaches: a convolution of ones over the counts
        adds_a = F.conv2d(a, torch.ones(2 * C, C // 2, 5, 5, dtype=a.dtype), padding=2, groups=2).sum().item() / B
        adds_b = F.conv2d(b, torch.ones(C, 2 * C, 3, 3, dtype=b.dtype), padding=1).sum().item() / B
        assert by_op[(f"model.{i}.conv_a", "binary synapse")] == adds_a > 0
        assert by_op[(f"model.{i}.rep", "binary synapse")] == adds_b > 0
        assert by_op[(f"model.{i}.rep", "bias (folded BN) once per output")] == T * C * px * px
        assert by_op[(f"model.{i}", "residual additions of real values")] == T * C * px * px


def test_geometry_rows_of_the_toy_neurons(model):
    rows = {g.name: g for g in synapse_geometry(model, 64)}
    for i, px in TOY_LAYERS.items():
        a, b = rows[f"model.{i}.lif_a"], rows[f"model.{i}.lif_b"]
        hw = px * px
        assert (a.conv, a.layer, a.c_in, a.c_out, a.k, a.stride, a.groups, a.T) == (f"model.{i}.conv_a", i, 16, 32, 5, 1, 2, T)
        assert (a.h_in, a.h_out, a.w_out) == (px, px, px)
        assert a.macs == a.executed_macs == 16 * 32 * 25 * hw // 2
        assert (b.conv, b.c_in, b.c_out, b.k, b.groups) == (f"model.{i}.rep", 32, 16, 3, 1)
        assert b.macs == 32 * 16 * 9 * hw
        assert b.executed_macs == hw * (32 * 32 + 9 * 32 + 32 * 16)  # RepConv: 1×1, depthwise 3×3, 1×1


def test_firing_init_makes_the_toy_an_identity():
    built = {}
    for scheme in ("reference", "firing"):
        torch.manual_seed(0)
        built[scheme] = SpikeDetectionModel(copy.deepcopy(YAML), verbose=False, init=scheme).eval()
    x = torch.rand(T, B, C, 16, 16, generator=torch.Generator().manual_seed(1))
    for i in TOY_LAYERS:
        ref, fir = built["reference"].model[i], built["firing"].model[i]
        assert torch.all(fir.bn_b.weight == 0) and torch.all(ref.bn_b.weight == 1)
        assert torch.all(fir.bn_a.weight == 1)  # not a residual branch's end: it feeds lif_b
        with torch.no_grad():
            assert torch.equal(fir(x), x) and not torch.equal(ref(x), x)
