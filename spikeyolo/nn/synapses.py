"""Which convolution each I-LIF feeds: the synapses of a SpikeYOLO model.

Every neuron of SpikeYOLO feeds exactly one convolution of the block that owns it (a plain
``nn.Conv2d``, or a ``RepConv`` / ``SepRepConv`` that re-parameterises into one), as the block
declares (:attr:`SpikingBlock.synapses`). Spike-driven inference wraps those convolutions, and
the energy accounting charges them per spike. The first ``MS_DownSampling`` has no neuron: its
convolution reads real-valued pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

from .spiking_block import SpikingBlock


@dataclass(frozen=True)
class Synapse:
    """One neuron → convolution connection.

    Attributes:
        owner: the block holding both.
        neuron: module path of the I-LIF (``model.2.Conv.lif1``).
        conv_attr: attribute name of the convolution on ``owner`` (``pwconv1``).
        conv: module path of the convolution (``model.2.Conv.pwconv1``).
    """

    owner: nn.Module
    neuron: str
    conv_attr: str
    conv: str


def _blocks(model: nn.Module) -> Iterator[tuple[str, SpikingBlock]]:
    """``(path prefix, block)`` of every SpikeYOLO block in module order."""
    for path, module in model.named_modules():
        if isinstance(module, SpikingBlock):
            yield (f"{path}." if path else ""), module


def synapses(model: nn.Module) -> Iterator[Synapse]:
    """Yield every neuron → convolution connection of ``model`` in module order."""
    for prefix, block in _blocks(model):
        for neuron, conv in block.fed_by_neurons():
            yield Synapse(block, prefix + neuron, conv, prefix + conv)


def first_convolutions(model: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    """Yield ``(path, conv)`` of every block convolution fed by real values, not spikes (the stem's)."""
    for prefix, block in _blocks(model):
        for conv in block.fed_by_real_values():
            yield prefix + conv, getattr(block, conv)
