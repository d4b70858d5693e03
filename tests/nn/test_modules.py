"""Module semantics: time axis, BN-and-pad border, head averaging over T, shapes, errors."""

import copy

import pytest
import torch
from spikingjelly.activation_based import functional

from spikeyolo.nn import BNAndPadLayer, MS_GetT, SpikeDetectionModel
from spikeyolo.nn.neuron import ILIF

from firing_weights import perturb_batchnorms


def test_get_t_repeats_images_and_transposes_event_frames():
    x = torch.rand(2, 3, 8, 8)
    y = MS_GetT(3, 3, 4)(x)
    assert y.shape == (4, 2, 3, 8, 8) and torch.equal(y[3], x)
    ev = torch.rand(2, 5, 3, 8, 8)  # [B, T, C, H, W]
    assert torch.equal(MS_GetT(3, 3, 1)(ev), ev.transpose(0, 1))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        MS_GetT()(torch.rand(3, 8, 8))


def test_bn_and_pad_border_is_bn_of_zero():
    layer = BNAndPadLayer(pad_pixels=2, num_features=4).eval()
    perturb_batchnorms(layer)
    x = torch.randn(1, 4, 5, 5)
    y = layer(x)
    assert y.shape == (1, 4, 9, 9)
    zero_response = layer.bn(torch.zeros(1, 4, 1, 1)).flatten()
    assert torch.allclose(y[0, :, 0, 0], zero_response) and torch.allclose(y[0, :, -1, 4], zero_response)
    assert torch.equal(y[:, :, 2:-2, 2:-2], layer.bn(x))


def test_model_runs_every_neuron_and_resets_state():
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False).eval()
    perturb_batchnorms(model)
    neurons = [m for m in model.modules() if isinstance(m, ILIF)]
    assert len(neurons) == 88  # the reference's 89 minus the never-called one in SpikeDFL
    fired = set()
    hooks = [n.register_forward_hook(lambda m, i, o: fired.add(m) if o.sum() > 0 else None) for n in neurons]
    with torch.no_grad():
        y, preds = model(torch.rand(2, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert len(fired) == 88
    assert y.shape == (2, 4 + 3, 8 * 8 + 4 * 4 + 2 * 2)
    assert [tuple(f.shape) for f in preds["feats"]] == [(2, 67, 8, 8), (2, 67, 4, 4), (2, 67, 2, 2)]
    assert all(n.v == 0.0 for n in neurons)


def test_training_forward_then_deepcopy_and_loss():
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).train()
    out = model(torch.rand(2, 3, 64, 64))
    assert out["boxes"].shape == (2, 64, 84) and out["scores"].shape == (2, 2, 84)
    copy.deepcopy(model)  # EMA and checkpointing deep-copy the model right after a training step
    from types import SimpleNamespace

    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    batch = {
        "img": torch.rand(2, 3, 64, 64),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.3, 0.3, 0.2, 0.3]]),
    }
    loss, items = model.loss(batch)
    assert loss.sum().isfinite() and loss.shape == (3,)
    loss.sum().backward()
    assert model.model[1].encode_conv.weight.grad is not None


def test_time_steps_head_averages_over_t():
    """With T=2 the model consumes [B, T, C, H, W] events; identical frames at T=2 differ from T=1 only via the leak."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).eval()
    perturb_batchnorms(model, seed=3)
    head = model.model[-1]
    feats = [torch.rand(2, 1, c, s, s) * 3 for c, s in zip((96, 192, 384), (8, 4, 2))]
    with torch.no_grad():
        maps = head.forward_head(feats, **head.one2many)["feats"]
        functional.reset_net(model)  # neurons keep their membrane between calls outside the model's forward
        manual = torch.cat((head.cv2[0](feats[0]).mean(0), head.cv3[0](feats[0]).mean(0)), 1)
    assert torch.equal(maps[0], manual)
    with torch.no_grad():
        y, _ = model(torch.rand(1, 2, 3, 64, 64))
    assert y.shape == (1, 6, 84)


def test_input_size_not_multiple_of_32_is_refused():
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).eval()
    with pytest.raises(ValueError, match=r"multiple of the model stride 32.*\(64, 96\)"):
        model(torch.rand(1, 3, 50, 70))
