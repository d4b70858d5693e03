"""Which convolution each I-LIF feeds: the synapses of a SpikeYOLO model.

Every neuron of SpikeYOLO feeds exactly one convolution of the block that owns it (a plain
``nn.Conv2d``, or a ``RepConv`` / ``SepRepConv`` that re-parameterises into one). Spike-driven
inference wraps those convolutions, and the energy accounting charges them per spike.
The first ``MS_DownSampling`` has no neuron: its convolution reads real-valued pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

from .blocks import MS_ConvBlock
from .conv import MS_DownSampling, MS_StandardConv, SpikeConvWithoutBN
from .sepconv import SepConv

# (neuron attribute, convolution attribute) per block type; subclasses (SpikeConv) inherit.
SYNAPSES: dict[type, tuple[tuple[str, str], ...]] = {
    MS_StandardConv: (("lif", "conv"),),
    SpikeConvWithoutBN: (("lif", "conv"),),
    SepConv: (("lif1", "pwconv1"), ("lif2", "dwconv2"), ("lif3", "pwconv3")),
    MS_ConvBlock: (("lif1", "conv1"), ("lif2", "conv2")),
    MS_DownSampling: (("encode_lif", "encode_conv"),),
}


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


def _pairs(module: nn.Module) -> tuple[tuple[str, str], ...]:
    pairs = SYNAPSES.get(type(module))
    if pairs is None:
        pairs = next((v for k, v in SYNAPSES.items() if isinstance(module, k)), ())
    return tuple((n, c) for n, c in pairs if hasattr(module, n))


def synapses(model: nn.Module) -> Iterator[Synapse]:
    """Yield every neuron → convolution connection of ``model`` in module order."""
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        for neuron, conv in _pairs(module):
            yield Synapse(module, prefix + neuron, conv, prefix + conv)


def first_convolutions(model: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    """Yield ``(path, conv)`` of every down-sampling convolution fed by real values, not spikes."""
    for path, module in model.named_modules():
        if isinstance(module, MS_DownSampling) and not hasattr(module, "encode_lif"):
            yield f"{path}.encode_conv", module.encode_conv
