"""Apply per-frame 2-D layers to time-major 5-D tensors ``[T, B, C, H, W]``."""

from __future__ import annotations

import torch
from torch import nn


def over_time(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a 4-D layer on ``x [T, B, C, H, W]`` with time and batch merged.

    Returns ``[T, B, C', H', W']``. BatchNorm in training mode therefore takes its statistics over
    ``T·B·H·W``, as in the reference.
    """
    y = layer(x.flatten(0, 1))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])
