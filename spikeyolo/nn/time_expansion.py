"""Layer 0 of every SpikeYOLO model: add (or move) the time axis."""

from __future__ import annotations

import torch
from torch import nn


class MS_GetT(nn.Module):  # noqa: N801 - YAML module name of the reference
    """Images ``[B, C, H, W]`` → ``[T, B, C, H, W]`` by repetition (direct encoding).

    Event data that already carries time, ``[B, T, C, H, W]``, is transposed to ``[T, B, C, H, W]``
    instead; ``T`` is then set by the data, not by this layer.

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
            return x.transpose(0, 1)
        if x.dim() != 4:
            raise ValueError(f"SpikeYOLO expects images [B, C, H, W] or event frames [B, T, C, H, W], got {list(x.shape)}")
        return x.unsqueeze(0).expand(self.T, *x.shape) if self.T > 1 else x.unsqueeze(0)

    def extra_repr(self) -> str:
        return f"T={self.T}"
