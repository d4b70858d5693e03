"""Spiking convolution units on ``[T, B, C, H, W]``: neuron → conv → BN."""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.conv import autopad

from .neuron import ILIF
from .spiking_block import SpikingBlock
from .temporal import over_time


class MS_StandardConv(SpikingBlock):  # noqa: N801 - YAML module name of the reference
    """I-LIF → conv (bias-free) → BN.

    Args:
        c1, c2: input / output channels.
        k, s, p, g, d: kernel, stride, padding (``None``: same), groups, dilation.

    ``[T, B, c1, H, W]`` → ``[T, B, c2, ⌈H/s⌉, ⌈W/s⌉]``.
    """

    synapses = (("lif", "conv"),)
    fusions = (("conv", "bn"),)

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, d: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.lif = ILIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return over_time(self.bn, over_time(self.conv, self.lif(x)))


class SpikeConv(MS_StandardConv):
    """The head/SPPF name of :class:`MS_StandardConv` (same layers, an ignored ``act`` argument)."""

    def __init__(
        self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, d: int = 1, act: bool = True
    ):
        super().__init__(c1, c2, k, s, p, g, d)


class SpikeConvWithoutBN(SpikingBlock):
    """I-LIF → conv with bias; the final 1×1 of each detection branch.

    ``[T, B, c1, H, W]`` → ``[T, B, c2, ⌈H/s⌉, ⌈W/s⌉]``.
    """

    synapses = (("lif", "conv"),)

    def __init__(
        self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, d: int = 1, act: bool = True
    ):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=True)
        self.lif = ILIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return over_time(self.conv, self.lif(x))


class MS_DownSampling(SpikingBlock):  # noqa: N801 - YAML module name of the reference
    """[I-LIF →] strided conv (with bias) → BN.

    Args:
        in_channels, embed_dims: input / output channels.
        kernel_size, stride, padding: of the convolution.
        first_layer: the stem that sees the raw image; it has no neuron (real-valued MACs).

    ``[T, B, C, H, W]`` → ``[T, B, embed_dims, ⌊(H + 2p − k)/s⌋ + 1, …]``.
    """

    synapses = (("encode_lif", "encode_conv"),)  # the stem lacks the neuron: its conv reads pixels
    fusions = (("encode_conv", "encode_bn"),)

    def __init__(
        self,
        in_channels: int = 2,
        embed_dims: int = 256,
        kernel_size: int = 3,
        stride: int = 2,
        padding: int = 1,
        first_layer: bool = True,
    ):
        super().__init__()
        self.encode_conv = nn.Conv2d(in_channels, embed_dims, kernel_size, stride, padding)
        self.encode_bn = nn.BatchNorm2d(embed_dims)
        if not first_layer:
            self.encode_lif = ILIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "encode_lif"):
            x = self.encode_lif(x)
        return over_time(self.encode_bn, over_time(self.encode_conv, x))
