"""Spike counts saved for backward as bytes: same loss and gradients, bit for bit, 1 byte per count."""

import contextlib
import copy
from types import SimpleNamespace

import pytest
import torch

import spikeyolo.nn.model as model_module
import spikeyolo.nn.saved_counts as saved_counts
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.saved_counts import _pack, _unpack, mark_counts


def _loss_and_grads(model, state, batch):
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    loss, _ = model.loss(batch)
    loss.sum().backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("frames", [None, 2])  # images (T = 1) and event frames [B, T, C, H, W]
def test_training_step_is_bit_identical_with_counts_saved_as_bytes(frames, monkeypatch):
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False).train()
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    g = torch.Generator().manual_seed(0)
    shape = (2, frames, 3, 64, 64) if frames else (2, 3, 64, 64)
    batch = {"img": torch.rand(*shape, generator=g), "batch_idx": torch.tensor([0.0, 1.0]),
             "cls": torch.tensor([[0.0], [2.0]]), "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.6, 0.2, 0.4]])}
    state = copy.deepcopy(model.state_dict())
    packed = []
    monkeypatch.setattr(saved_counts, "_pack", lambda t: packed.append(p := _pack(t)) or p)
    loss, grads = _loss_and_grads(model, state, batch)
    assert sum(isinstance(p, tuple) for p in packed) >= 88  # every neuron's counts, as saved by its convolution
    monkeypatch.setattr(model_module, "counts_saved_as_bytes", contextlib.nullcontext)
    loss_fp32, grads_fp32 = _loss_and_grads(model, state, batch)
    assert torch.equal(loss, loss_fp32) and grads.keys() == grads_fp32.keys() and len(grads) > 300
    assert all(torch.equal(grads[k], grads_fp32[k]) for k in grads)
    assert sum(int(g.count_nonzero()) for g in grads.values()) > 0


def test_marked_counts_and_their_views_pack_to_bytes_with_the_same_layout():
    counts = torch.randint(0, 5, (2, 8, 4, 4)).float().contiguous(memory_format=torch.channels_last).requires_grad_()
    mark_counts(counts, 4)
    view = counts.unsqueeze(0).flatten(0, 1)  # what a convolution saves
    packed = _pack(view)
    assert packed[0].dtype == torch.uint8 and packed[0].stride() == view.stride()
    restored = _unpack(packed)
    assert restored.dtype == torch.float32 and torch.equal(restored, view) and restored.stride() == view.stride()


def test_unmarked_or_wide_tensors_are_saved_as_they_are():
    x = torch.rand(2, 3, requires_grad=True)
    assert _pack(x) is x and _unpack(x) is x
    wide = mark_counts(torch.full((2, 3), 300.0, requires_grad=True), 300)  # D > 255 does not fit a byte
    assert _pack(wide) is wide
    frozen = mark_counts(torch.ones(2, 3), 4)  # no gradient: never saved, never marked
    assert _pack(frozen) is frozen
