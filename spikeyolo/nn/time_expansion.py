"""Layer 0 of every SpikeYOLO model: add (or move) the time axis."""

from __future__ import annotations

import torch
from torch import nn

from .layout import memory_format


class MS_GetT(nn.Module):  # noqa: N801 - YAML module name of the reference
    """Images ``[B, C, H, W]`` → ``[T, B, C, H, W]`` by repetition (direct encoding).

    Event data that already carries time, ``[B, T, C, H, W]``, is transposed to ``[T, B, C, H, W]``
    instead; ``T`` is then set by the data, not by this layer.

    The output is laid out in the device's format (:mod:`.layout`), channels-last per frame by
    default (memory ``[T, B, H, W, C]``): every convolution and BatchNorm after it then runs in
    oneDNN's channels-last kernels (depthwise 7×7 about 4× faster than channels-first on CPU), and
    element-wise layers keep the layout. Copying the 3-channel input costs next to nothing.

    Args:
        in_channels: input channels (kept for the YAML signature ``[c_out, T]``).
        out_channels: output channels, equal to ``in_channels``.
        T: number of time steps for 4-D input.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, T: int = 1):
        super().__init__()
        if int(T) < 1:
            raise ValueError(f"MS_GetT needs T >= 1, got {T}")
        self.in_channels = in_channels
        self.T = int(T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            frames = x.transpose(0, 1)
        elif x.dim() == 4:
            frames = x.unsqueeze(0).expand(self.T, *x.shape)
        else:
            raise ValueError(f"SpikeYOLO expects images [B, C, H, W] or event frames [B, T, C, H, W], got {list(x.shape)}")
        merged = frames.reshape(-1, *frames.shape[2:]).contiguous(memory_format=memory_format(frames.device))
        return merged.view(frames.shape)

    def extra_repr(self) -> str:
        return f"T={self.T}"
