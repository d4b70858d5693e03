"""Re-parameterised inference: fold every BatchNorm and factorised convolution into single convs.

After :func:`fuse_spiking_modules` each neuron feeds exactly one ``nn.Conv2d`` (with bias) whose
output goes straight to the next neuron or residual sum; the BatchNorms become ``nn.Identity``.
All folds are exact in real arithmetic (spec §3.3–3.6); in float32 they change outputs by
rounding only. The BN-and-pad border (the BN's zero-input response) is what makes RepConv and
SepRepConv equal to one dense convolution on zero-padded input.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.utils.torch_utils import fuse_conv_and_bn

from .blocks import MS_ConvBlock
from .conv import MS_DownSampling, MS_StandardConv
from .reparam import RepConv, SepRepConv
from .sepconv import SepConv


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``y = scale · x + shift`` per channel ``[C]``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _dense_conv(weight: torch.Tensor, bias: torch.Tensor, padding: int) -> nn.Conv2d:
    out_c, in_c, k, _ = weight.shape
    conv = nn.Conv2d(in_c, out_c, k, 1, padding, bias=True, device=weight.device, dtype=weight.dtype).requires_grad_(False)
    conv.weight.copy_(weight)
    conv.bias.copy_(bias)
    return conv


@torch.no_grad()
def sep_rep_conv_to_dense(m: SepRepConv) -> nn.Conv2d:
    """BN-and-pad → 1×1 (W1) → depthwise k×k (W2) as one dense k×k conv with bias.

    ``K[o,i] = W2[o] · W1[o,i] · a_i`` and ``b_o = (W1 · c)_o · ΣW2[o]`` for the BN ``y = a·x + c``.
    """
    a, c = _bn_affine(m.body[0].bn)
    pw, dw = m.body[1][0], m.body[1][1]
    w1 = pw.weight[:, :, 0, 0] * a[None, :]  # [out, in]
    weight = dw.weight * w1[:, :, None, None]  # [out,1,k,k] * [out,in,1,1]
    bias = (pw.weight[:, :, 0, 0] @ c) * dw.weight.sum((1, 2, 3))
    return _dense_conv(weight, bias, m.body[0].pad_pixels)


@torch.no_grad()
def rep_conv_to_dense(m: RepConv) -> nn.Conv2d:
    """1×1 (W0) → BN-and-pad → depthwise 3×3 (W2) → 1×1 (W3) → BN as one dense 3×3 conv with bias."""
    w0 = m.body[0].weight[:, :, 0, 0]  # [mid, in]
    a, c = _bn_affine(m.body[1].bn)  # [mid]
    dw, pw, bn = m.body[2]
    w3 = pw.weight[:, :, 0, 0]  # [out, mid]
    # K[o,i,h,w] = Σ_j W3[o,j] · W2[j,h,w] · a_j · W0[j,i]
    weight = torch.einsum("oj,jhw,ji->oihw", w3, dw.weight[:, 0] * a[:, None, None], w0)
    bias = w3 @ (c * dw.weight.sum((1, 2, 3)))
    return fuse_conv_and_bn(_dense_conv(weight, bias, 1), bn)


def _fold(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    return fuse_conv_and_bn(conv, bn).requires_grad_(False) if isinstance(bn, nn.BatchNorm2d) else conv


def fuse_spiking_modules(model: nn.Module) -> int:
    """Fold BN and factorised convs of every SpikeYOLO block in ``model`` in place (eval only).

    Returns:
        The number of blocks fused.

    Raises:
        RuntimeError: ``model`` (or a part of it) is already fused.
    """
    if is_fused(model):
        raise RuntimeError("this SpikeYOLO model is already fused; fuse a fresh (unfused) copy instead")
    count = 0
    for m in list(model.modules()):
        if isinstance(m, MS_StandardConv):  # also SpikeConv
            m.conv, m.bn = _fold(m.conv, m.bn), nn.Identity()
        elif isinstance(m, MS_DownSampling):
            m.encode_conv, m.encode_bn = _fold(m.encode_conv, m.encode_bn), nn.Identity()
        elif isinstance(m, SepConv):
            m.pwconv1, m.bn1 = _fold(m.pwconv1, m.bn1), nn.Identity()
            m.dwconv2, m.bn2 = _fold(m.dwconv2, m.bn2), nn.Identity()
            m.pwconv3, m.bn3 = _fold(sep_rep_conv_to_dense(m.pwconv3), m.bn3), nn.Identity()
        elif isinstance(m, MS_ConvBlock):
            m.conv1, m.bn1 = _fold(rep_conv_to_dense(m.conv1), m.bn1), nn.Identity()
            m.conv2, m.bn2 = _fold(rep_conv_to_dense(m.conv2), m.bn2), nn.Identity()
        else:
            continue
        count += 1
    return count


def is_fused(model: nn.Module) -> bool:
    """True if ``model`` contains SpikeYOLO blocks and none has a BatchNorm or factorised conv left."""
    blocks = [m for m in model.modules() if isinstance(m, (MS_StandardConv, MS_DownSampling, SepConv, MS_ConvBlock))]
    unfused = any(isinstance(m, (nn.BatchNorm2d, RepConv, SepRepConv)) for b in blocks for m in b.modules())
    return bool(blocks) and not unfused
