"""Per-synapse geometry and multiply-accumulate counts of a SpikeYOLO model at one input size.

For every I-LIF and the convolution it feeds (:mod:`spikeyolo.nn.synapses`), plus the first,
real-valued convolution, one :class:`SynapseGeometry` row: channels, kernel, stride, groups,
spatial sizes and MACs per image and per time step, in two views:

* ``macs``: the dense re-parameterised view the paper and the spike-driven mode use — every
  RepConv / SepRepConv is one k×k convolution (spikes reach it directly);
* ``executed_macs``: what the factorised integer model computes (RepConv = 1×1 then 3×3,
  SepRepConv = 1×1 then depthwise 3×3), summed over the block's convolutions.

Shapes are measured by running the model once on a blank input, so any YAML is covered.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass

import torch
from torch import nn

from ..nn.fuse import to_dense_form
from ..nn.neuron import ILIF
from ..nn.synapses import first_convolutions, synapses


@dataclass
class SynapseGeometry:
    """One neuron-fed (or the first, pixel-fed) convolution at a given input size.

    Attributes:
        name: the neuron's module path (``model.2.Conv.lif1``), or ``first_layer``.
        layer: YAML layer index.
        conv: module path of the convolution.
        c_in, c_out, k, stride, groups: the (dense) convolution's shape.
        h_in, w_in, h_out, w_out: spatial sizes in pixels.
        T: time steps the convolution runs per image.
        macs: dense-view MACs per image and time step, ``c_in·c_out·k²·h_out·w_out / groups``.
        executed_macs: factorised-view MACs per image and time step.
        spiking: ``False`` for the first convolution, which reads real-valued pixels.
    """

    name: str
    layer: int
    conv: str
    c_in: int
    c_out: int
    k: int
    stride: int
    groups: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int
    T: int
    macs: int
    executed_macs: int
    spiking: bool = True


def _layer(path: str) -> int:
    parts = path.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def conv_macs(conv: nn.Conv2d, output_shape: torch.Size) -> int:
    """MACs of ``conv`` per image and time step, from its output shape ``[T·B, C', H', W']``."""
    kh, kw = conv.kernel_size
    return output_shape[1:].numel() * (conv.in_channels // conv.groups) * kh * kw


def _blank_input(model: nn.Module, imgsz: int, frames: int | None) -> torch.Tensor:
    stride = int(max(getattr(model, "stride", torch.tensor([32])).max(), 32))
    if imgsz <= 0 or imgsz % stride:
        raise ValueError(f"image size {imgsz} is not a positive multiple of the model stride {stride}")
    first = next(first_convolutions(model), None)
    if first is None:
        raise TypeError(f"{type(model).__name__} has no SpikeYOLO input layer (MS_DownSampling without neuron)")
    channels = first[1].in_channels
    shape = (1, frames, channels, imgsz, imgsz) if frames else (1, channels, imgsz, imgsz)
    return torch.zeros(shape, dtype=next(model.parameters()).dtype, device=next(model.parameters()).device)


def _run(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def synapse_geometry(model: nn.Module, imgsz: int, frames: int | None = None) -> list[SynapseGeometry]:
    """Measure every synapse of ``model`` (a ``SpikeDetectionModel``) at ``imgsz × imgsz``.

    Args:
        model: the spiking detector; it is deep-copied, never changed.
        imgsz: square input size in pixels, a multiple of the model stride.
        frames: ``T`` of event data fed as ``[B, T, C, H, W]``; ``None`` feeds an image and lets
            layer 0 repeat it to its own T.

    Returns:
        The first convolution's row, then one row per neuron in module order.

    Raises:
        TypeError: the model has no I-LIF neurons.
        ValueError: ``imgsz`` does not fit the model stride.
    """
    if not any(isinstance(m, ILIF) for m in model.modules()):
        raise TypeError(f"{type(model).__name__} has no I-LIF neurons: synaptic operations are defined for spiking models")
    x = _blank_input(model, imgsz, frames)

    dense = deepcopy(model).eval()
    to_dense_form(dense)
    shapes: dict[str, tuple[nn.Conv2d, torch.Size, torch.Size]] = {}
    convs = [(s.neuron, getattr(s.owner, s.conv_attr), s.conv) for s in synapses(dense)]
    convs += [("first_layer", conv, path) for path, conv in first_convolutions(dense)]
    hooks = [
        conv.register_forward_hook(lambda m, i, o, key=key: shapes.__setitem__(key, (m, i[0].shape, o.shape)))
        for key, conv, _ in convs
    ]
    _run(dense, x)
    for h in hooks:
        h.remove()

    executed = deepcopy(model).eval()
    executed_macs: dict[str, int] = {}

    def count(key: str):
        def hook(m: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
            executed_macs[key] = executed_macs.get(key, 0) + conv_macs(m, output.shape)
        return hook

    pieces = [(s.neuron, getattr(s.owner, s.conv_attr)) for s in synapses(executed)]
    pieces += [("first_layer", conv) for _, conv in first_convolutions(executed)]
    hooks = [c.register_forward_hook(count(key)) for key, block in pieces for c in block.modules() if isinstance(c, nn.Conv2d)]
    _run(executed, x)
    for h in hooks:
        h.remove()

    rows = []
    for key, _, path in sorted(convs, key=lambda c: c[0] != "first_layer"):
        conv, shape_in, shape_out = shapes[key]
        rows.append(SynapseGeometry(
            name=key, layer=_layer(path), conv=path,
            c_in=conv.in_channels, c_out=conv.out_channels, k=conv.kernel_size[0], stride=conv.stride[0],
            groups=conv.groups, h_in=shape_in[-2], w_in=shape_in[-1], h_out=shape_out[-2], w_out=shape_out[-1],
            T=shape_out[0], macs=conv_macs(conv, shape_out), executed_macs=executed_macs[key],
            spiking=key != "first_layer",
        ))
    return rows
