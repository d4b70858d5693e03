"""The layout switch (spikeyolo.nn.layout): channels-first per device type or operation, same numbers, the right convs channels-first."""

from copy import deepcopy
from types import SimpleNamespace

import pytest
import torch

from spikeyolo.nn import saved_counts
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.layout import layout_of_depthwise, memory_format, set_memory_format, using_memory_format
from spikeyolo.nn.saved_counts import _pack
from spikeyolo.nn.sepconv import SepConv

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


DEPTHWISE = "depthwise training"


def test_an_operation_inherits_the_device_format_unless_it_has_its_own():
    assert memory_format("cpu", DEPTHWISE) is torch.channels_last  # no entry: the device's
    assert memory_format("cuda", DEPTHWISE) is CHANNELS_FIRST  # measured on an H200 (layout.DEFAULT_FORMATS)
    with using_memory_format("cpu", CHANNELS_FIRST):
        assert memory_format("cpu", DEPTHWISE) is CHANNELS_FIRST
    assert set_memory_format("cpu", CHANNELS_FIRST, DEPTHWISE) is None  # had no format of its own
    try:
        assert memory_format("cpu", DEPTHWISE) is CHANNELS_FIRST and memory_format("cpu") is torch.channels_last
    finally:
        set_memory_format("cpu", None, DEPTHWISE)
    assert memory_format("cpu", DEPTHWISE) is torch.channels_last
    with pytest.raises(ValueError, match="operation must be one of 'all', 'depthwise training', got 'pooling'"):
        memory_format("cpu", "pooling")


def test_the_depthwise_layout_applies_to_fp32_training_only():
    x = torch.rand(2, 4, 8, 8)
    with using_memory_format("cpu", CHANNELS_FIRST, DEPTHWISE):
        assert layout_of_depthwise(x) is CHANNELS_FIRST
        with torch.no_grad():
            assert layout_of_depthwise(x) is torch.channels_last  # validation, prediction
        with torch.autocast("cpu", torch.bfloat16):
            assert layout_of_depthwise(x) is torch.channels_last  # AMP: measured the other way round
        assert layout_of_depthwise(x.bfloat16()) is torch.channels_last
    assert layout_of_depthwise(x) is torch.channels_last


def test_depthwise_weights_take_the_depthwise_format():
    with using_memory_format("cpu", CHANNELS_FIRST, DEPTHWISE):
        model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False)
    weights = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    depthwise = [w for w in weights if w.shape[1] == 1]
    assert len(depthwise) == 38 and all(w.stride()[:2] == (w[0].numel(),) * 2 for w in depthwise)
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights
               if w.shape[1] > 1)


def test_depthwise_in_its_own_layout_gives_the_same_training_step(template, monkeypatch):
    """SepConv's depthwise convolutions on channels-first copies (as on CUDA in fp32), everything else as before."""
    batch = _batch()
    batch["img"] = batch["img"].double()
    packed = []
    monkeypatch.setattr(saved_counts, "_pack", lambda t: packed.append(p := _pack(t)) or p)

    def step(model):
        packed.clear()
        dw_inputs, grads = [], {}
        for m in model.modules():
            if isinstance(m, SepConv):
                m.dwconv2.register_forward_pre_hook(lambda mod, inp: dw_inputs.append(inp[0]))
            if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
                m.register_full_backward_pre_hook(lambda mod, g: grads.__setitem__(mod, g[0]))
        loss, _ = model.loss(batch)
        loss.sum().backward()
        return loss, dw_inputs, grads, sum(isinstance(p, tuple) for p in packed)

    last = _model(template, torch.float64).train()
    loss, dw_last, _, bytes_last = step(last)
    with using_memory_format("cpu", CHANNELS_FIRST, DEPTHWISE):
        own = _model(template, torch.float64).train()
        loss_own, dw_own, grads, bytes_own = step(own)
    torch.testing.assert_close(loss_own, loss, rtol=1e-9, atol=1e-12)
    assert len(dw_own) == len(dw_last) == 12
    assert all(_channels_first(x) for x in dw_own) and not any(_channels_first(x) for x in dw_last)
    assert bytes_own == bytes_last >= 88  # the channels-first copies are still kept as bytes
    depthwise_convs = {m.dwconv2 for m in own.modules() if isinstance(m, SepConv)}
    others = [g for m, g in grads.items() if m not in depthwise_convs and g.shape[1] > 1]
    assert len(others) > 200 and all(g.is_contiguous(memory_format=torch.channels_last) for g in others)
    pairs = [(a.grad, b.grad) for a, b in zip(last.parameters(), own.parameters()) if a.grad is not None]
    assert len(pairs) > 300
    for a, b in pairs:
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-10)
