"""Re-parameterised inference: each fold is exact up to float rounding; fused models behave the same."""

import copy

import pytest
import torch

from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.fuse import densify_spiking_modules, fuse_spiking_modules, is_fused
from spikeyolo.nn.neuron import ILIF
from spikeyolo.nn.reparam import RepConv, SepRepConv, densify_chain

from firing_weights import perturb_batchnorms


@pytest.mark.parametrize("cls", [RepConv, SepRepConv])
def test_factorised_convs_equal_one_dense_conv(cls):
    m = cls(8, 12).eval()
    perturb_batchnorms(m)
    x = torch.randint(0, 5, (2, 8, 9, 9)).double()
    m = m.double()
    chain = m.fold()
    dense = densify_chain(chain)
    assert dense.kernel_size == (3, 3) and dense.padding == (1, 1) and dense.bias is not None
    with torch.no_grad():
        assert torch.allclose(m(x), chain(x), rtol=1e-12, atol=1e-12)
        assert torch.allclose(m(x), dense(x), rtol=1e-12, atol=1e-12)


def _spikes_and_membranes(model, x):
    """Output, then per neuron (in forward order) its counts and its input (the membrane at T = 1)."""
    spikes, membranes, order = {}, {}, []

    def record(name):
        def pre(module, inputs):
            membranes[name] = inputs[0]

        def post(module, inputs, output):
            spikes[name] = output
            order.append(name)

        return pre, post

    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, ILIF):
            pre, post = record(name)
            hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    with torch.no_grad():
        y, _ = model(x)
    for h in hooks:
        h.remove()
    return y, spikes, membranes, order


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_model_matches_unfused(seed):
    """float32: identical spikes and outputs within 1e-4, except that a spike may flip where the
    rounding of an exact fold meets a tie: the first neuron that differs must sit within 1e-4 of
    k + 0.5 (what follows a flip is its consequence, and can spread)."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False).eval()
    perturb_batchnorms(model, seed)
    fused = copy.deepcopy(model).fuse(verbose=False)
    assert fused.is_fused() and not model.is_fused()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    y0, s0, u0, order = _spikes_and_membranes(model, x)
    y1, s1, _, _ = _spikes_and_membranes(fused, x)
    differing = [n for n in order if not torch.equal(s0[n], s1[n])]
    if differing:
        first = differing[0]
        mismatch = s0[first] != s1[first]
        u = u0[first][mismatch]
        assert torch.all((u - u.floor() - 0.5).abs() < 1e-4), f"{first} flipped away from a rounding tie"
    else:
        assert torch.allclose(y0, y1, rtol=1e-4, atol=1e-4)



@pytest.mark.parametrize(("seed", "form"), [(0, "factorised"), (1, "dense"), (2, "densified")])
def test_fused_model_is_exact_in_float64(seed, form):
    """In double precision no rounding tie is hit: identical spikes everywhere, outputs to 1e-9,
    for the factorised fold, the dense fold, and a factorised model densified afterwards."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False).eval().double()
    perturb_batchnorms(model, seed)
    fused = copy.deepcopy(model)
    fuse_spiking_modules(fused, dense=form == "dense")
    if form == "densified":
        assert densify_spiking_modules(fused) == 12 + 2 * 7  # n: 12 SepConvs (one chain), 7 MS_ConvBlocks (two)
    chains = [m for m in fused.modules() if isinstance(m, torch.nn.Sequential) and isinstance(m[0], torch.nn.Conv2d)]
    assert bool(chains) == (form == "factorised")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    y0, s0, _, order = _spikes_and_membranes(model, x)
    y1, s1, _, _ = _spikes_and_membranes(fused, x)
    assert all(torch.equal(s0[n], s1[n]) for n in order) and len(order) == 88
    assert torch.allclose(y0, y1, rtol=1e-9, atol=1e-9)


def test_fuse_is_idempotent_but_module_fusion_refuses_twice():
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).eval()
    model.fuse(verbose=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert model.fuse(verbose=False) is model  # ultralytics' AutoBackend fuses on every val/predict
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError, match="already fused"):
        fuse_spiking_modules(model)
    assert is_fused(model)


def test_fused_weights_are_refused_for_training():
    fused = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).eval().fuse(verbose=False)
    fresh = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False)
    with pytest.raises(ValueError, match="fused for inference"):
        fresh.load(fused)


def test_fused_model_loads_with_weights_only(tmp_path):
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).eval()
    perturb_batchnorms(model)
    model.fuse(verbose=False)
    torch.save({"model": model}, tmp_path / "fused.pt")
    loaded = torch.load(tmp_path / "fused.pt", weights_only=True)["model"]  # only registered safe globals
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert loaded.is_fused() and torch.equal(loaded(x)[0], model(x)[0])
