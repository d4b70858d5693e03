"""Re-parameterised inference: fold every BatchNorm (and BN-and-pad) into convolutions.

Two exact forms (spec §3.3–3.6), both free of BatchNorm:

* **factorised** (``fuse()``'s default, fastest on CPUs): RepConv and SepRepConv keep their
  1×1 / depthwise / 1×1 chain; the BN-and-pad layer becomes the bias of the first 1×1
  convolution, which pads its input with zeros — the border then equals that bias, exactly the
  BN's zero-input response the reference fills in.
* **dense** (the paper's view, needed for spike-driven execution): each chain becomes one dense
  k×k convolution, so every neuron feeds exactly one convolution.

In float32 both change outputs by rounding only.
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


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int = 1) -> nn.Conv2d:
    out_c, in_per_group, k, _ = weight.shape
    conv = nn.Conv2d(in_per_group * groups, out_c, k, 1, padding, groups=groups, bias=bias is not None,
                     device=weight.device, dtype=weight.dtype).requires_grad_(False)
    conv.weight.copy_(weight)
    if bias is not None:
        conv.bias.copy_(bias)
    return conv


def _fold(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    return fuse_conv_and_bn(conv, bn).requires_grad_(False) if isinstance(bn, nn.BatchNorm2d) else conv


@torch.no_grad()
def fold_sep_rep_conv(m: SepRepConv) -> nn.Sequential:
    """BN-and-pad (``a·x + c``) → 1×1 (W1) → depthwise k×k as ``1×1 (W1·diag a, bias W1·c, zero pad)`` → depthwise."""
    a, c = _bn_affine(m.body[0].bn)
    pw, dw = m.body[1]
    w1 = pw.weight[:, :, 0, 0]
    first = _conv((w1 * a[None, :])[:, :, None, None], w1 @ c, m.body[0].pad_pixels)
    return nn.Sequential(first, _conv(dw.weight, dw.bias, 0, dw.groups))


@torch.no_grad()
def fold_rep_conv(m: RepConv) -> nn.Sequential:
    """1×1 (W0) → BN-and-pad (``a·x + c``) → depthwise 3×3 → 1×1 → BN as
    ``1×1 (diag a · W0, bias c, zero pad)`` → depthwise → 1×1 with the BN folded."""
    a, c = _bn_affine(m.body[1].bn)
    w0 = m.body[0].weight[:, :, 0, 0]
    dw, pw, bn = m.body[2]
    first = _conv((a[:, None] * w0)[:, :, None, None], c, m.body[1].pad_pixels)
    return nn.Sequential(first, _conv(dw.weight, dw.bias, 0, dw.groups), _fold(_conv(pw.weight, pw.bias, 0), bn))


@torch.no_grad()
def densify(chain: nn.Sequential) -> nn.Conv2d:
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


def sep_rep_conv_to_dense(m: SepRepConv) -> nn.Conv2d:
    """SepRepConv as one dense k×k conv with bias."""
    return densify(fold_sep_rep_conv(m))


def rep_conv_to_dense(m: RepConv) -> nn.Conv2d:
    """RepConv (including its final BN) as one dense 3×3 conv with bias."""
    return densify(fold_rep_conv(m))


def _fold_chain(chain: nn.Sequential, bn: nn.Module) -> nn.Sequential:
    """Fold a BN that follows a folded chain into the chain's last conv."""
    return nn.Sequential(*chain[:-1], _fold(chain[-1], bn))


def fuse_spiking_modules(model: nn.Module, dense: bool = False) -> int:
    """Fold BN (and, with ``dense``, the factorised chains) of every SpikeYOLO block in place (eval only).

    Returns:
        The number of blocks fused.

    Raises:
        RuntimeError: ``model`` is already fused.
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
            m.pwconv3, m.bn3 = _fold_chain(fold_sep_rep_conv(m.pwconv3), m.bn3), nn.Identity()
        elif isinstance(m, MS_ConvBlock):
            m.conv1, m.bn1 = _fold_chain(fold_rep_conv(m.conv1), m.bn1), nn.Identity()
            m.conv2, m.bn2 = _fold_chain(fold_rep_conv(m.conv2), m.bn2), nn.Identity()
        else:
            continue
        count += 1
    if dense:
        densify_spiking_modules(model)
    return count


def densify_spiking_modules(model: nn.Module) -> int:
    """Turn every folded chain of a fused model into one dense conv (no-op for dense models)."""
    count = 0
    for m in list(model.modules()):
        for name in {SepConv: ("pwconv3",), MS_ConvBlock: ("conv1", "conv2")}.get(type(m), ()):
            chain = getattr(m, name)
            if isinstance(chain, nn.Sequential):
                setattr(m, name, densify(chain))
                count += 1
    return count


def is_fused(model: nn.Module) -> bool:
    """True if ``model`` contains SpikeYOLO blocks and none has a BatchNorm or BN-and-pad left."""
    blocks = [m for m in model.modules() if isinstance(m, (MS_StandardConv, MS_DownSampling, SepConv, MS_ConvBlock))]
    unfused = any(isinstance(m, (nn.BatchNorm2d, RepConv, SepRepConv)) for b in blocks for m in b.modules())
    return bool(blocks) and not unfused
