"""Initialisation schemes of SpikeYOLO models (values only: layers, names and shapes never change).

``reference``: PyTorch's defaults followed by ultralytics' ``initialize_weights`` (BN weight 1,
bias 0), as in the reference code.

``firing``: BatchNorm layers whose output is the membrane input of an I-LIF neuron get the bias
``FIRING_BN_BIAS``, so that at initialisation the potential of those neurons is centred inside
the firing window [0, D] instead of at its lower edge.

A loaded state dict replaces every initialised value, so checkpoints are unaffected by the scheme.
"""

from __future__ import annotations

import torch
from torch import nn

from .neuron import ILIF

__all__ = ["DEFAULT_INIT", "FIRING_BN_BIAS", "INIT_SCHEMES", "apply_init", "neuron_input_norms"]

DEFAULT_INIT = "firing"
INIT_SCHEMES = ("reference", "firing")
FIRING_BN_BIAS = 0.5


def neuron_input_norms(model: nn.Module, imgsz: int = 64) -> list[nn.BatchNorm2d]:
    """BatchNorm layers whose output tensor is, unchanged, the input of an I-LIF neuron.

    Found by data flow, not by names: one eval-mode, no-grad forward of zeros ``[1, C, S, S]``
    (``S = imgsz`` px, a multiple of 32) matches each neuron's input storage, when the neuron
    runs, with the BN outputs produced so far (all kept alive until the end). Residual sums, pooling and concatenations create new tensors, so neurons that
    read a residual stream are not matched. The model's BN statistics are untouched (eval mode).
    """
    produced: dict[int, tuple[nn.BatchNorm2d, torch.Tensor]] = {}
    matched: dict[nn.BatchNorm2d, None] = {}  # ordered set

    def record_output(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        produced[out.data_ptr()] = (mod, out)  # holding the tensor keeps its storage from being reused

    def record_input(mod: nn.Module, inp: tuple) -> None:
        # Matched now, while the input is alive: a freed input's address may later hold a BN output.
        if inp[0].data_ptr() in produced:
            matched[produced[inp[0].data_ptr()][0]] = None

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
        with torch.no_grad():
            model(torch.zeros(1, ch, imgsz, imgsz))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return list(matched)


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
