"""Numerical parity: imported reference weights reproduce the reference formulas spike for spike.

The reference side is an independent re-implementation of the spec (reference_forward.py) that
only sees the checkpoint's tensors; our side is the model SpikeYOLO builds from the same file.
BatchNorm statistics are perturbed so that every neuron fires (fresh models are mostly silent).
The strict comparisons run in float64, where no float rounding lands on a rounding tie; in
float32 the two sides may sum in different orders (kernel choice), so a spike may flip exactly
where the membrane sits on k + 0.5, which the float32 test checks.
"""

from types import SimpleNamespace

import pytest
import torch
from ultralytics.utils.loss import v8DetectionLoss

from spikeyolo.checkpoints import build_reference_model, load_reference_checkpoint
from spikeyolo.cfg import load_model_yaml
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.neuron import ILIF

from firing_weights import perturb_batchnorms

from .reference_forward import ReferenceForward
from .reference_format import save_reference_checkpoint


def _imported(tmp_path, cfg: str, nc: int, seed: int, t_steps: int = 1, dtype=torch.float64):
    """Write a reference checkpoint of ``cfg`` with firing weights; return (our model, reference state, yaml, gen1)."""
    d = load_model_yaml(cfg)
    d["backbone"][0] = [-1, 1, "MS_GetT", [3, t_steps]]
    source = SpikeDetectionModel(d, nc=nc, verbose=False)
    perturb_batchnorms(source, seed)
    gen1 = "gen1" in cfg
    path = save_reference_checkpoint(tmp_path / "ref.pt", source, {i: str(i) for i in range(nc)}, ema=None, gen1=gen1)
    ref = load_reference_checkpoint(path)
    model = build_reference_model(ref)
    model.model[0].T = t_steps  # MS_GetT's T is not a tensor: the released COCO files use 1
    d["nc"] = nc
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in ref.state_dict.items()}
    return model.to(dtype), state, d, gen1


def _our_spikes(model, x):
    spikes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: spikes.__setitem__(n, o)) for name, m in model.named_modules()
             if isinstance(m, ILIF)]
    with torch.no_grad():
        y, preds = model(x)
    for h in hooks:
        h.remove()
    return y, preds, spikes


CASES = [  # (config, classes, T, input shape): COCO T=1, COCO T=2 (repeated image), Gen1 T=2 events
    ("snn_yolov8n.yaml", 3, 1, (2, 3, 64, 64)),
    ("snn_yolov8n.yaml", 3, 2, (2, 3, 64, 64)),
    ("snn_yolov8s-gen1.yaml", 2, 2, (2, 2, 3, 64, 64)),
]


@pytest.mark.parametrize(("cfg", "nc", "t_steps", "shape"), CASES)
def test_inference_parity(tmp_path, cfg, nc, t_steps, shape):
    model, state, d, gen1 = _imported(tmp_path, cfg, nc, seed=t_steps, t_steps=t_steps)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y, preds, ours = _our_spikes(model.eval(), x)
    reference = ReferenceForward(state, d, gen1=gen1)
    with torch.no_grad():
        y_ref, maps_ref = reference.forward(x)
    assert ours.keys() == reference.spikes.keys() and len(ours) == 88
    for name, s in reference.spikes.items():
        assert s.shape[0] == t_steps
        assert torch.equal(ours[name], s), name
        assert s.sum() > 0, f"{name} is silent: the test would not exercise it"
    assert torch.allclose(y, y_ref, rtol=1e-9, atol=1e-9)
    for ours_map, ref_map in zip(preds["feats"], maps_ref):
        assert torch.allclose(ours_map, ref_map, rtol=1e-9, atol=1e-9)


def test_float32_parity_differs_only_at_rounding_ties(tmp_path):
    model, state, d, gen1 = _imported(tmp_path, "snn_yolov8n.yaml", 3, seed=5, dtype=torch.float32)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    y, _, ours = _our_spikes(model.eval(), x)
    reference = ReferenceForward(state, d, gen1=gen1)
    with torch.no_grad():
        y_ref, _ = reference.forward(x)
    differing = [n for n in reference.order if not torch.equal(ours[n], reference.spikes[n])]
    if differing:  # the first flip must sit on a tie; what follows is its consequence
        u = reference.inputs[differing[0]][ours[differing[0]] != reference.spikes[differing[0]]]
        assert torch.all((u - u.floor() - 0.5).abs() < 1e-4)
    else:
        assert torch.allclose(y, y_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("cfg", "nc", "t_steps", "shape"), [CASES[0], CASES[2]])
def test_training_loss_parity(tmp_path, cfg, nc, t_steps, shape):
    model, state, d, gen1 = _imported(tmp_path, cfg, nc, seed=11, t_steps=t_steps)
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    g = torch.Generator().manual_seed(3)
    batch = {
        "img": torch.rand(shape, generator=g, dtype=torch.float64),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.3], [0.25, 0.3, 0.2, 0.3], [0.6, 0.6, 0.5, 0.5]]),
    }
    model.train()
    loss, _ = model.loss(batch)
    reference = ReferenceForward(state, d, gen1=gen1, training=True)
    with torch.no_grad():
        _, maps = reference.forward(batch["img"])
    b = maps[0].shape[0]
    flat = torch.cat([m.reshape(b, m.shape[1], -1) for m in maps], 2)
    preds = {"boxes": flat[:, :64], "scores": flat[:, 64:], "feats": maps}
    ref_loss, _ = v8DetectionLoss(model)(preds, batch)
    assert loss.sum().item() == pytest.approx(ref_loss.sum().item(), rel=1e-9)
