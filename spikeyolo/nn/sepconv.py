"""SepConv, the inverted-separable token mixer of both SpikeYOLO blocks."""

from __future__ import annotations

import torch
from torch import nn

from .layout import layout_of_depthwise
from .neuron import ILIF
from .reparam import SepRepConv
from .spiking_block import SpikingBlock
from .temporal import in_memory_format, over_time


class SepConv(SpikingBlock):
    """I-LIF → 1×1 expand → BN → I-LIF → depthwise k×k → BN → I-LIF → SepRepConv → BN.

    Args:
        dim: channels C (in and out).
        expansion_ratio: hidden width ``int(ratio·C)``.
        kernel_size: depthwise kernel (7 in SpikeYOLO).

    ``[T, B, C, H, W]`` → ``[T, B, C, H, W]``. ``act2_layer``, ``bias`` and ``padding`` exist for
    the reference signature; the padding is always ``(k − 1)/2``.
    """

    synapses = (("lif1", "pwconv1"), ("lif2", "dwconv2"), ("lif3", "pwconv3"))
    fusions = (("pwconv1", "bn1"), ("dwconv2", "bn2"), ("pwconv3", "bn3"))

    def __init__(
        self,
        dim: int,
        expansion_ratio: float = 2,
        act2_layer: type[nn.Module] = nn.Identity,
        bias: bool = False,
        kernel_size: int = 7,
        padding: int = 1,
    ):
        super().__init__()
        hidden = int(expansion_ratio * dim)
        self.pwconv1 = nn.Conv2d(dim, hidden, 1, 1, 0, bias=bias)
        self.dwconv2 = nn.Conv2d(hidden, hidden, kernel_size, 1, (kernel_size - 1) // 2, groups=hidden, bias=bias)
        self.pwconv3 = SepRepConv(hidden, dim, kernel_size=3)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.bn3 = nn.BatchNorm2d(dim)
        self.lif1 = ILIF()
        self.lif2 = ILIF()
        self.lif3 = ILIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = over_time(self.bn1, over_time(self.pwconv1, self.lif1(x)))
        x = over_time(self.bn2, over_time(self._depthwise, self.lif2(x)))
        return over_time(self.bn3, over_time(self.pwconv3, self.lif3(x)))

    def _depthwise(self, frames: torch.Tensor) -> torch.Tensor:
        """``dwconv2`` on ``[T·B, C, H, W]`` in its own layout: channels-first in fp32 training on CUDA."""
        return in_memory_format(self.dwconv2, frames, layout_of_depthwise(frames))
