"""Spiking spatial-pyramid pooling (fast)."""

from __future__ import annotations

import torch
from torch import nn

from .conv import SpikeConv
from .spiking_block import Operation, OperationCounter, SpikingBlock
from .temporal import cat_channels, over_time


class SpikeSPPF(SpikingBlock):
    """SpikeConv 1×1 → three chained k×k max-pools → concat → SpikeConv 1×1.

    ``[T, B, c1, H, W]`` → ``[T, B, c2, H, W]``; the pools act on real-valued BN outputs.
    """

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = SpikeConv(c1, hidden, 1, 1)
        self.cv2 = SpikeConv(hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(over_time(self.m, y[-1]))
        return self.cv2(cat_channels(y))

    def audit_operations(self) -> list[tuple[nn.Module, OperationCounter]]:
        """Each of the three pools compares k² real values per output: k² − 1 comparisons."""
        k = self.m.kernel_size
        return super().audit_operations() + [
            (self.m, lambda inputs, output: [Operation("max-pool of real values", "compare", output.numel() * (k**2 - 1))])
        ]
