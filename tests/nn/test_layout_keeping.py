"""Channels-last layout is kept through the neck (upsample, concat, SPPF) with reference values."""

from types import SimpleNamespace

import pytest
import torch

from spikeyolo.nn import ChannelConcat, FrameUpsample, SpikeDetectionModel
from spikeyolo.nn.temporal import merge_time


def _frames(t: int, b: int, c: int, h: int, w: int) -> torch.Tensor:
    """``[T, B, C, H, W]`` laid out as the model keeps it: channels-last per frame."""
    x = torch.randn(t * b, c, h, w).contiguous(memory_format=torch.channels_last)
    return x.view(t, b, c, h, w)


def _channels_last(x: torch.Tensor) -> bool:
    return x.flatten(0, 1).is_contiguous(memory_format=torch.channels_last) and not x.flatten(0, 1).is_contiguous()


@pytest.mark.parametrize("t, b", [(1, 1), (1, 2), (3, 2)])
def test_upsample_equals_reference_3d_upsample_and_keeps_layout(t, b):
    x = _frames(t, b, 6, 5, 4)
    y = FrameUpsample(None, (1, 2, 2), "nearest")(x)
    assert torch.equal(y, torch.nn.Upsample(None, (1, 2, 2), "nearest")(x))  # what the reference runs
    assert y.shape == (t, b, 6, 10, 8) and _channels_last(y)


def test_upsample_other_scales_and_4d_input_are_torch_upsample():
    x = torch.randn(2, 3, 4, 4, 4)
    assert torch.equal(FrameUpsample(None, 2, "nearest")(x), torch.nn.Upsample(None, 2, "nearest")(x))
    img = torch.randn(1, 3, 4, 4)
    assert torch.equal(FrameUpsample(None, 2.0, "bilinear")(img), torch.nn.Upsample(None, 2.0, "bilinear")(img))


@pytest.mark.parametrize("t, b", [(1, 1), (2, 3)])
def test_concat_equals_torch_cat_and_keeps_layout(t, b):
    xs = [_frames(t, b, 4, 3, 5), _frames(t, b, 7, 3, 5)]
    y = ChannelConcat(2)(xs)
    assert torch.equal(y, torch.cat(xs, 2)) and y.shape == (t, b, 11, 3, 5) and _channels_last(y)
    flat = [torch.randn(2, 3), torch.randn(2, 4)]  # other dims and ranks: ultralytics' Concat
    assert torch.equal(ChannelConcat(1)(flat), torch.cat(flat, 1))


def test_single_frame_gets_canonical_channels_last_strides():
    x = _frames(1, 1, 8, 4, 6)
    x = x.view(1, 1, 8, 4, 6)  # a view gives the size-1 dims arbitrary strides
    merged = merge_time(x)
    assert merged.stride() == (8 * 4 * 6, 1, 6 * 8, 8) and torch.equal(merged, x[0])
    contiguous = torch.randn(1, 1, 8, 4, 6)  # a channels-first tensor stays a plain view
    assert merge_time(contiguous).stride() == contiguous.flatten(0, 1).stride()


@pytest.mark.parametrize("batch", [1, 2])
def test_every_convolution_of_the_model_sees_channels_last_input(batch):
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).eval()
    for m in (model, model.fuse(verbose=False)):
        seen = []
        hooks = [c.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0]))
                 for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c is not m.model[-1].dfl.conv]
        with torch.no_grad():
            m(torch.rand(batch, 3, 64, 64))
        for h in hooks:
            h.remove()
        assert len(seen) == len(hooks) > 0
        assert all(x.is_contiguous(memory_format=torch.channels_last) and x.stride(1) == 1 for x in seen)


@pytest.mark.parametrize("frames", [None, 2])
def test_every_gradient_reaching_a_convolution_or_batchnorm_is_channels_last(frames):
    """Mixed layouts in backward send BN and conv backward to their slow paths (BN about 4x slower)."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False).train()
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    seen = {}
    for layer in layers:
        layer.register_full_backward_pre_hook(lambda mod, grad_out: seen.__setitem__(mod, grad_out[0]))
    shape = (2, frames, 3, 64, 64) if frames else (2, 3, 64, 64)
    batch = {"img": torch.rand(*shape), "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([[0.0], [2.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.6, 0.2, 0.4]])}
    loss, _ = model.loss(batch)
    loss.sum().backward()
    assert len(seen) == len(layers) - 1  # every layer but the DFL's fixed convolution
    slow = [type(m).__name__ for m, g in seen.items() if not g.is_contiguous(memory_format=torch.channels_last)]
    assert not slow, f"{len(slow)} layers got channels-first gradients"
