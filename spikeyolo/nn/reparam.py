"""Re-parameterisable convolutions of SpikeYOLO: BN-and-pad, RepConv and SepRepConv.

They operate on 4-D tensors ``[N, C, H, W]`` (time merged into the batch by the caller). Their
padding is filled with the BatchNorm's response to a zero input, which is what makes each of
them equivalent, in eval mode, to a single dense k×k convolution with bias.
"""

from __future__ import annotations

import torch
from torch import nn

from .temporal import channels_last_grad


class BNAndPadLayer(nn.Module):
    """BatchNorm followed by padding whose border equals the BN output for a zero input.

    Args:
        pad_pixels: border width added on each side (pixels).
        num_features: channels C.

    Input ``[N, C, H, W]``, output ``[N, C, H + 2p, W + 2p]``. The border value per channel is
    ``β − μ·γ / sqrt(σ² + eps)`` from the running statistics, without gradient, also in training.
    """

    def __init__(self, pad_pixels: int, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
        self.pad_pixels = pad_pixels

    def border_value(self) -> torch.Tensor:
        """Per-channel border value ``[C]``, the eval-mode BN output for zero input."""
        bn = self.bn
        return (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x)
        p = self.pad_pixels
        if p <= 0:
            return y
        n, c, h, w = y.shape
        layout = torch.channels_last if y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        border = self.border_value().to(y.dtype).view(1, c, 1, 1)
        out = border.expand(n, c, h + 2 * p, w + 2 * p).contiguous(memory_format=layout)  # F.pad would drop the layout
        out[:, :, p:-p, p:-p] = channels_last_grad(y) if layout is torch.channels_last else y  # its grad: a slice
        return out


class RepConv(nn.Module):
    """1×1 conv → BN-and-pad → depthwise 3×3 → 1×1 conv → BN (SpikeYOLO's, not ultralytics').

    Input ``[N, C_in, H, W]`` → ``[N, C_out, H, W]``. Equivalent in eval mode to one dense 3×3
    convolution (padding 1, with bias) followed by the final BN.
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int = 3, bias: bool = False, group: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channel, in_channel, 1, 1, 0, groups=group, bias=bias),
            BNAndPadLayer(pad_pixels=1, num_features=in_channel),
            nn.Sequential(
                nn.Conv2d(in_channel, in_channel, 3, 1, 0, groups=in_channel, bias=bias),
                nn.Conv2d(in_channel, out_channel, 1, 1, 0, groups=group, bias=bias),
                nn.BatchNorm2d(out_channel),
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepRepConv(nn.Module):
    """BN-and-pad → 1×1 conv → depthwise k×k conv (no final BN).

    Input ``[N, C_in, H, W]`` → ``[N, C_out, H, W]``. Equivalent in eval mode to one dense k×k
    convolution (padding (k−1)/2, with bias).
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int = 3, bias: bool = False, group: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            BNAndPadLayer(pad_pixels=(kernel_size - 1) // 2, num_features=in_channel),
            nn.Sequential(
                nn.Conv2d(in_channel, out_channel, 1, 1, 0, groups=group, bias=bias),
                nn.Conv2d(out_channel, out_channel, kernel_size, 1, 0, groups=out_channel, bias=bias),
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
