"""The two SpikeYOLO meta-blocks (channel preserving, ``[T, B, C, H, W]`` → same shape)."""

from __future__ import annotations

import torch
from torch import nn

from .conv import MS_StandardConv
from .neuron import ILIF
from .reparam import RepConv
from .sepconv import SepConv
from .spiking_block import SpikingBlock
from .temporal import over_time


class MS_ConvBlock(SpikingBlock):  # noqa: N801 - YAML module name of the reference
    """SNN-Block-2: ``x += SepConv(x)``, then ``x += BN(RepConv(N(BN(RepConv(N(x))))))``.

    Args:
        input_dim: channels C.
        mlp_ratio: hidden width ``int(C·ratio)`` of the RepConv pair.
        sep_kernel_size: depthwise kernel of the SepConv.
        full: kept for the reference signature (unused there too).
    """

    synapses = (("lif1", "conv1"), ("lif2", "conv2"))
    fusions = (("conv1", "bn1"), ("conv2", "bn2"))
    residual_norms = ("Conv.bn3", "bn2")
    residual_additions = 2

    def __init__(self, input_dim: int, mlp_ratio: float = 4.0, sep_kernel_size: int = 7, full: bool = False):
        super().__init__()
        hidden = int(input_dim * mlp_ratio)
        self.Conv = SepConv(dim=input_dim, kernel_size=sep_kernel_size)
        self.conv1 = RepConv(input_dim, hidden)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = RepConv(hidden, input_dim)
        self.bn2 = nn.BatchNorm2d(input_dim)
        self.lif1 = ILIF()
        self.lif2 = ILIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.Conv(x)
        y = over_time(self.bn1, over_time(self.conv1, self.lif1(x)))
        y = over_time(self.bn2, over_time(self.conv2, self.lif2(y)))
        return x + y


class MS_AllConvBlock(SpikingBlock):  # noqa: N801 - YAML module name of the reference
    """SNN-Block-1: ``x += SepConv(x)``, then ``x += StdConv3×3(StdConv3×3(x))``.

    Args:
        input_dim: channels C.
        mlp_ratio: hidden width ``int(C·ratio)``.
        sep_kernel_size: depthwise kernel of the SepConv.
        group: kept for the reference signature (unused there too).
    """

    residual_norms = ("Conv.bn3", "conv2.bn")  # its neurons and norms belong to its SepConv and MS_StandardConvs
    residual_additions = 2

    def __init__(self, input_dim: int, mlp_ratio: float = 4.0, sep_kernel_size: int = 7, group: bool = False):
        super().__init__()
        hidden = int(input_dim * mlp_ratio)
        self.Conv = SepConv(dim=input_dim, kernel_size=sep_kernel_size)
        self.conv1 = MS_StandardConv(input_dim, hidden, 3)
        self.conv2 = MS_StandardConv(hidden, input_dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.Conv(x)
        return x + self.conv2(self.conv1(x))
