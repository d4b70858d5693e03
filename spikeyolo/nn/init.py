"""Initialisation schemes of SpikeYOLO models (values only: layers, names and shapes never change).

``reference``: PyTorch's defaults followed by ultralytics' ``initialize_weights`` (BN weight 1,
bias 0), as in the reference code.

``firing`` (default), two changes measured to speed up learning from scratch
(``bench/learning.py``, ``bench/learning_diagnostics.py``):

* every BatchNorm whose output is, unchanged, the membrane input of an I-LIF neuron gets the bias
  ``FIRING_BN_BIAS`` (0.5), so that in training mode the potential ``~N(0.5, 1)`` is centred on
  the first rounding threshold: half the outputs fire (reference: 31 %) and 69 % of the potentials
  lie inside the straight-through window [0, D] (reference: 50 %);
* the last BatchNorm of every residual branch (each block declares them,
  :attr:`SpikingBlock.residual_norms`: ``Conv.bn3`` and ``bn2`` of ``MS_ConvBlock``, ``Conv.bn3``
  and ``conv2.bn`` of ``MS_AllConvBlock``) gets weight 0, so each block starts as the identity. The
  gradient then reaches the early layers through the skip connections instead of through a
  chain of spiking branches, which at the reference init amplifies it about 16-fold from the
  head to the stem.

A loaded state dict replaces every initialised value, so checkpoints are unaffected by the scheme.
"""

from __future__ import annotations

import torch
from torch import nn

from .neuron import ILIF
from .spiking_block import SpikingBlock

__all__ = [
    "DEFAULT_INIT", "FIRING_BN_BIAS", "INIT_SCHEMES", "apply_init", "neuron_input_norms", "residual_branch_norms",
]

DEFAULT_INIT = "firing"
INIT_SCHEMES = ("reference", "firing")
FIRING_BN_BIAS = 0.5
# Autograd nodes of pure reshapes (``over_time`` views its BN output back to [T, B, C, H, W]).
_VIEW_NODES = {"ViewBackward0", "UnsafeViewBackward0", "AliasBackward0"}


def neuron_input_norms(model: nn.Module, imgsz: int = 64) -> list[nn.BatchNorm2d]:
    """BatchNorm layers whose output tensor is, unchanged (up to a reshape), the input of an I-LIF.

    Found by data flow, not by names: one eval-mode forward of zeros ``[1, C, S, S]`` (``S =
    imgsz`` px, a multiple of 32) with autograd recording; a neuron's input is BN-fed when its
    autograd node, past reshapes, is a BN's node. Residual sums, pooling, upsampling and
    concatenations add their own nodes, so neurons reading a residual stream are not matched.
    BN statistics are untouched (eval mode).
    """
    bn_of_node: dict = {}
    matched: dict[nn.BatchNorm2d, None] = {}  # ordered set

    def record_output(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        bn_of_node[out.grad_fn] = mod  # the dict also keeps the node alive until the neuron runs

    def record_input(mod: nn.Module, inp: tuple) -> None:
        node = inp[0].grad_fn
        while node is not None and type(node).__name__ in _VIEW_NODES:
            node = node.next_functions[0][0]
        if node in bn_of_node:
            matched[bn_of_node[node]] = None

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(record_output))
        elif isinstance(m, ILIF):
            hooks.append(m.register_forward_pre_hook(record_input))
    ch = next(p for p in model.parameters() if p.dim() == 4).shape[1]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(torch.zeros(1, ch, imgsz, imgsz, requires_grad=True))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return list(matched)


def residual_branch_norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The last BatchNorm of every residual branch ``x + branch(x)`` of the SpikeYOLO blocks, as they declare."""
    return [bn for m in model.modules() if isinstance(m, SpikingBlock) for bn in m.residual_branch_norms()]


def apply_init(model: nn.Module, scheme: str) -> None:
    """Apply an initialisation ``scheme`` (one of :data:`INIT_SCHEMES`) to a freshly built model in place.

    Raises:
        ValueError: unknown scheme.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {list(INIT_SCHEMES)}")
    if scheme == "firing":
        with torch.no_grad():
            for bn in neuron_input_norms(model):
                bn.bias.fill_(FIRING_BN_BIAS)
            for bn in residual_branch_norms(model):
                bn.weight.zero_()
