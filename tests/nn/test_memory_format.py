"""The layout switch (spikeyolo.nn.layout): channels-first per device type, same numbers, every conv channels-first."""

from copy import deepcopy
from types import SimpleNamespace

import pytest
import torch

from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.layout import memory_format, set_memory_format, using_memory_format

from firing_weights import perturb_batchnorms

CHANNELS_FIRST = torch.contiguous_format


def _channels_first(x: torch.Tensor) -> bool:
    """Contiguous and not also channels-last (a tensor with C = 1 or H = W = 1 is both)."""
    return x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)


def _in_image_units(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Detections ``[B, 4 + nc, A]`` with boxes as fractions of the image size (pixels would need a 100× atol)."""
    return torch.cat((y[:, :4] / max(x.shape[-2:]), y[:, 4:]), 1)


def _batch(frames: int | None = None) -> dict[str, torch.Tensor]:
    shape = (2, frames, 3, 64, 64) if frames else (2, 3, 64, 64)
    return {
        "img": torch.rand(*shape, generator=torch.Generator().manual_seed(1)),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [2.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.6, 0.2, 0.4]]),
    }


@pytest.fixture(scope="module")
def template() -> SpikeDetectionModel:
    """A model built with the default (channels-last) layout whose neurons fire."""
    torch.manual_seed(0)
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False)
    perturb_batchnorms(model)  # nearly every neuron fires: spike counts are compared, not zeros
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    return model


def _model(template: SpikeDetectionModel, dtype: torch.dtype = torch.float32) -> SpikeDetectionModel:
    """A copy in ``dtype``; the move lays its weights out for the layout in force (``SpikeDetectionModel._apply``)."""
    return deepcopy(template).to(dtype)


def test_defaults_overrides_and_restoring():
    assert memory_format("cpu") is torch.channels_last and memory_format(torch.device("cpu")) is torch.channels_last
    with using_memory_format("cpu", CHANNELS_FIRST):
        assert memory_format("cpu") is CHANNELS_FIRST
        assert memory_format("cuda:1") is torch.channels_last  # per device type: cuda is untouched
    assert memory_format("cpu") is torch.channels_last
    previous = set_memory_format("cuda:0", CHANNELS_FIRST)  # an index names its type
    try:
        assert previous is torch.channels_last and memory_format("cuda") is CHANNELS_FIRST
    finally:
        set_memory_format("cuda", None)  # back to the default
    assert memory_format("cuda") is torch.channels_last
    with pytest.raises(ValueError, match="memory format"):
        set_memory_format("cpu", torch.channels_last_3d)


def test_weights_follow_the_layout_when_built_fused_and_moved(template):
    def convs(m):  # weights whose two layouts differ: k > 1 and not depthwise
        return [c.weight for c in m.modules() if isinstance(c, torch.nn.Conv2d) and min(c.weight.shape[1:]) > 1]

    model = _model(template)
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs(model))
    with using_memory_format("cpu", CHANNELS_FIRST):
        built = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False)
        assert all(_channels_first(w) for w in convs(built))
        assert all(_channels_first(w) for w in convs(deepcopy(built).eval().fuse(verbose=False)))
        model.to("cpu")  # moving (here: to the same device) lays the weights out for the device again
        assert all(_channels_first(w) for w in convs(model))


def _convolution_inputs(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The detections of ``model(x)`` and the input of every convolution but the DFL's."""
    seen = []
    hooks = [
        c.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0]))
        for c in model.modules()
        if isinstance(c, torch.nn.Conv2d) and c is not model.model[-1].dfl.conv
    ]
    with torch.no_grad():
        y = model(x)[0]
    for h in hooks:
        h.remove()
    assert len(seen) == len(hooks) > 0
    return y, seen


# Numbers are compared in float64: in float32 the two layouts' kernels sum in different orders
# (differences of a few 1e-6 before a neuron), and a count that sits on a rounding boundary then
# flips and the flip spreads, as between the fused and unfused forms (seen: fused n, 64×96 px, one
# count of layer 2 flipped). The layouts themselves are the same in both dtypes.
@pytest.mark.parametrize(("batch", "dtype"), [(1, torch.float32), (1, torch.float64), (2, torch.float64)])
def test_channels_first_gives_the_same_outputs_and_every_convolution_sees_channels_first_input(template, batch, dtype):
    x = torch.rand(batch, 3, 64, 96, generator=torch.Generator().manual_seed(2), dtype=dtype)
    last = _model(template, dtype).eval()
    expected = [_convolution_inputs(m, x)[0] for m in (last, deepcopy(last).fuse(verbose=False))]
    with using_memory_format("cpu", CHANNELS_FIRST):
        first = _model(template, dtype).eval()
        for m, want in zip((first, deepcopy(first).fuse(verbose=False)), expected):
            got, inputs = _convolution_inputs(m, x)
            assert all(_channels_first(t) for t in inputs if t.shape[1] > 1), "a convolution got channels-last input"
            if dtype is torch.float64:
                torch.testing.assert_close(_in_image_units(got, x), _in_image_units(want, x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("frames", [None, 2])
def test_channels_first_training_step_same_loss_and_channels_first_gradients(template, frames):
    batch = _batch(frames)
    batch["img"] = batch["img"].double()  # labels stay float32, as the stock loss wants them
    last = _model(template, torch.float64).train()
    loss, _ = last.loss(batch)
    loss.sum().backward()
    with using_memory_format("cpu", CHANNELS_FIRST):
        first = _model(template, torch.float64).train()
        layers = [m for m in first.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
        seen = {}
        for layer in layers:
            layer.register_full_backward_pre_hook(lambda mod, grad_out: seen.__setitem__(mod, grad_out[0]))
        loss_first, _ = first.loss(batch)
        loss_first.sum().backward()
    torch.testing.assert_close(loss_first, loss, rtol=1e-9, atol=1e-12)
    assert len(seen) == len(layers) - 1  # every layer but the DFL's fixed convolution
    slow = [type(m).__name__ for m, g in seen.items() if g.shape[1] > 1 and not _channels_first(g)]
    assert not slow, f"{len(slow)} layers got channels-last or strided gradients"
    grads = [(a.grad, b.grad) for a, b in zip(last.parameters(), first.parameters()) if a.grad is not None]
    assert len(grads) > 300
    for a, b in grads:
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-10)
