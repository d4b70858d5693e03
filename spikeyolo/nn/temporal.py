"""Apply per-frame 2-D layers to time-major 5-D tensors ``[T, B, C, H, W]``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .layout import memory_format
from .saved_counts import carry_mark


def merge_time(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, C, H, W]`` → ``[T·B, C, H, W]`` as a view (no copy).

    A channels-last single frame (``T·B = 1``) gets the canonical batch stride ``C·H·W``: its
    view-derived stride is arbitrary, and torch then calls an ``N = 1`` tensor channels-first,
    so upsampling, pooling, concatenation and BatchNorm would switch to the slow layout. (A repair
    of channels-last strides, not a choice of layout: a channels-first frame is left as it is.)
    """
    y = x.flatten(0, 1)
    if torch.jit.is_tracing() or torch.compiler.is_compiling():  # graphs (ONNX, TorchScript, inductor) choose their own layout
        return y
    if y.shape[0] == 1 and not y.is_contiguous() and y.is_contiguous(memory_format=torch.channels_last):
        c, h, w = y.shape[1:]
        y = y.as_strided(y.shape, (c * h * w, 1, w * c, c), y.storage_offset())
    return y


def over_time(layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run a 4-D layer (module or function) on ``x [T, B, C, H, W]`` with time and batch merged.

    Returns ``[T, B, C', H', W']``. BatchNorm in training mode therefore takes its statistics over
    ``T·B·H·W``, as in the reference.

    Kept instead of spikingjelly's ``functional.seq_to_ann_forward`` (a plain ``flatten(0, 1)``),
    which loses channels-last for a single frame: 8 of SpikeYOLO-n's 130 convolutions then get
    channels-first input at batch 1, against 1 (DFL) here, and the 320 px forward takes 88.8 vs
    86.9 ms (``python bench/spikingjelly_parity.py``).
    """
    y = layer(merge_time(x))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


def cat_channels(xs: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Concatenate ``[T, B, C_i, H, W]`` tensors along channels, keeping their per-frame layout.

    ``torch.cat`` on dim 2 of the 5-D tensors returns a channels-first result (torch has no
    channels-last notion for this 5-D shape), which every following convolution would copy back.
    """
    y = torch.cat([merge_time(layout_grad(x)) for x in xs], 1)  # each input's grad: a channel slice
    return y.view(xs[0].shape[0], xs[0].shape[1], *y.shape[1:])


class _LayoutGrad(torch.autograd.Function):
    """Identity forward; backward hands on the gradient in the device's layout (per frame for 5-D)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        frames = grad if grad.dim() == 4 else grad.reshape(-1, *grad.shape[2:])
        return frames.contiguous(memory_format=memory_format(grad.device)).view(grad.shape)


def layout_grad(x: torch.Tensor) -> torch.Tensor:
    """``x [T, B, C, H, W]`` (or ``[N, C, H, W]``) unchanged; its gradient gets the device's layout (:mod:`.layout`).

    Gradients from the loss arrive channels-first (and T-expanded by the mean over time), those of
    a padded copy's interior are strided slices; left so, every convolution and BatchNorm backward
    below would run its slow mixed-layout path (BN backward about 4x slower on CPU, channels-last).
    """
    return _LayoutGrad.apply(x) if x.requires_grad else x


def in_memory_format(
    layer: Callable[[torch.Tensor], torch.Tensor], frames: torch.Tensor, fmt: torch.memory_format
) -> torch.Tensor:
    """``layer(frames)`` for ``frames [N, C, H, W]`` computed in ``fmt``, for an operation whose fast
    kernels want another layout than the device's (:func:`.layout.layout_of_depthwise`).

    Returns ``[N, C', H', W']`` in the device's layout, and the gradient of ``frames`` comes back in
    it too, so nothing around the layer changes. The copy keeps the counts mark (:mod:`.saved_counts`):
    the layer saves the copy, still as bytes.
    """
    device_format = memory_format(frames.device)
    if fmt == device_format:
        return layer(frames)
    copy = carry_mark(frames, layout_grad(frames).contiguous(memory_format=fmt))
    return layer(copy).contiguous(memory_format=device_format)
