"""Re-parameterisable convolutions of SpikeYOLO: BN-and-pad, RepConv and SepRepConv, and their folding.

They operate on 4-D tensors ``[N, C, H, W]`` (time merged into the batch by the caller). Their
padding is filled with the BatchNorm's response to a zero input, which is what makes each of
them equivalent, in eval mode, to a single dense k×k convolution with bias.

Two exact eval-mode forms free of BatchNorm (spec §3.3–3.6):

* **factorised** (``fold()``, fastest on CPUs): the 1×1 / depthwise / 1×1 chain is kept; the
  BN-and-pad layer becomes the bias of the first 1×1 convolution, which pads its input with
  zeros — the border then equals that bias, exactly the BN's zero-input response the reference
  fills in;
* **dense** (:func:`densify_chain` of that chain; the paper's view, needed for spike-driven
  execution): one k×k convolution, so the neuron in front feeds exactly one convolution.

In float32 both change outputs by rounding only.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.utils.torch_utils import fuse_conv_and_bn

from .layout import memory_format
from .temporal import layout_grad


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``y = scale · x + shift`` per channel ``[C]``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int = 1) -> nn.Conv2d:
    out_c, in_per_group, k, _ = weight.shape
    conv = nn.Conv2d(in_per_group * groups, out_c, k, 1, padding, groups=groups, bias=bias is not None,
                     device=weight.device, dtype=weight.dtype).requires_grad_(False)
    conv.weight.copy_(weight)
    if bias is not None:
        conv.bias.copy_(bias)
    return conv


@torch.no_grad()
def fold_norm(conv: nn.Conv2d | nn.Sequential, bn: nn.BatchNorm2d) -> nn.Conv2d | nn.Sequential:
    """Fold an eval-mode BN that follows ``conv`` (or a folded chain: into its last conv) into it."""
    if isinstance(conv, nn.Sequential):
        return nn.Sequential(*conv[:-1], fold_norm(conv[-1], bn))
    return fuse_conv_and_bn(conv, bn).requires_grad_(False)


@torch.no_grad()
def densify_chain(chain: nn.Sequential) -> nn.Conv2d:
    """A folded ``1×1 (zero pad p) → depthwise k×k [→ 1×1]`` chain as one dense k×k conv (padding p).

    ``K[o,i] = Σ_j W3[o,j] · Wd[j] · W1[j,i]`` and ``b = W3 · (b1 · ΣWd + bd) + b3``.
    """
    first, dw, *last = chain
    w1, b1 = first.weight[:, :, 0, 0], first.bias
    wd = dw.weight[:, 0]  # [mid, k, k]
    mid_bias = b1 * wd.sum((1, 2)) + (dw.bias if dw.bias is not None else 0)
    if last:
        w3, b3 = last[0].weight[:, :, 0, 0], last[0].bias
    else:
        w3, b3 = torch.eye(wd.shape[0], dtype=wd.dtype, device=wd.device), None
    weight = torch.einsum("oj,jhw,ji->oihw", w3, wd, w1)
    bias = w3 @ mid_bias + (b3 if b3 is not None else 0)
    return _conv(weight, bias, first.padding[0])


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
        device_layout = memory_format(y.device)
        layout = device_layout if y.is_contiguous(memory_format=device_layout) else torch.contiguous_format
        border = self.border_value().to(y.dtype).view(1, c, 1, 1)
        out = border.expand(n, c, h + 2 * p, w + 2 * p).contiguous(memory_format=layout)  # F.pad would drop the layout
        out[:, :, p:-p, p:-p] = layout_grad(y) if layout is device_layout else y  # its grad: a slice
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

    @torch.no_grad()
    def fold(self) -> nn.Sequential:
        """Eval-mode factorised form, its final BN folded in.

        1×1 (W0) → BN-and-pad (``a·x + c``) → depthwise 3×3 → 1×1 → BN becomes
        ``1×1 (diag a · W0, bias c, zero pad)`` → depthwise → 1×1 with the BN folded.
        """
        a, c = _bn_affine(self.body[1].bn)
        w0 = self.body[0].weight[:, :, 0, 0]
        dw, pw, bn = self.body[2]
        first = _conv((a[:, None] * w0)[:, :, None, None], c, self.body[1].pad_pixels)
        return nn.Sequential(first, _conv(dw.weight, dw.bias, 0, dw.groups), fold_norm(_conv(pw.weight, pw.bias, 0), bn))


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

    @torch.no_grad()
    def fold(self) -> nn.Sequential:
        """Eval-mode factorised form.

        BN-and-pad (``a·x + c``) → 1×1 (W1) → depthwise k×k becomes
        ``1×1 (W1·diag a, bias W1·c, zero pad)`` → depthwise.
        """
        a, c = _bn_affine(self.body[0].bn)
        pw, dw = self.body[1]
        w1 = pw.weight[:, :, 0, 0]
        first = _conv((w1 * a[None, :])[:, :, None, None], w1 @ c, self.body[0].pad_pixels)
        return nn.Sequential(first, _conv(dw.weight, dw.bias, 0, dw.groups))
