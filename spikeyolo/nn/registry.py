"""YAML module names → classes, with the reference's output-channel rule for each.

A rule maps ``(c1, args, width, max_channels)`` to ``(c2, constructor_args)``. The rules are those
of the reference ``parse_model`` (spec §5.1), including its quirks (no 8-rounding for
``MS_DownSampling`` and ``MS_StandardConv``), because checkpoint shapes depend on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from ultralytics.utils.ops import make_divisible

from .blocks import MS_AllConvBlock, MS_ConvBlock
from .conv import MS_DownSampling, MS_StandardConv, SpikeConv
from .head import SpikeDetect
from .neck import ChannelConcat, FrameUpsample
from .sppf import SpikeSPPF
from .time_expansion import MS_GetT

Rule = Callable[[int, list, float, float], "tuple[int, list]"]


def _scaled_divisible(c1, args, width, max_channels):
    c2 = make_divisible(min(args[0], max_channels) * width, 8)
    return c2, [c1, c2, *args[1:]]


def _unscaled(c1, args, width, max_channels):
    return args[0], [c1, args[0], *args[1:]]


def _scaled_floor(c1, args, width, max_channels):
    c2 = int(args[0] * width)
    return c2, [c1, c2, *args[1:]]


def _scaled_floor_capped(c1, args, width, max_channels):
    c2 = min(int(args[0] * width), int(max_channels * width))
    return c2, [c1, c2, *args[1:]]


def _channel_preserving(c1, args, width, max_channels):
    return c1, [c1, *args]


def _parameter_free(c1, args, width, max_channels):
    return c1, list(args)


@dataclass(frozen=True)
class ModuleSpec:
    """A YAML-buildable module: its class and its channel rule (``None``: special-cased)."""

    cls: type[nn.Module]
    rule: Rule | None


MODULES: dict[str, ModuleSpec] = {
    "MS_GetT": ModuleSpec(MS_GetT, _unscaled),
    "MS_DownSampling": ModuleSpec(MS_DownSampling, _scaled_floor),
    "MS_AllConvBlock": ModuleSpec(MS_AllConvBlock, _channel_preserving),
    "MS_ConvBlock": ModuleSpec(MS_ConvBlock, _channel_preserving),
    "MS_StandardConv": ModuleSpec(MS_StandardConv, _scaled_floor_capped),
    "SpikeConv": ModuleSpec(SpikeConv, _scaled_divisible),
    "SpikeSPPF": ModuleSpec(SpikeSPPF, _scaled_divisible),
    "SpikeDetect": ModuleSpec(SpikeDetect, None),
    "Concat": ModuleSpec(ChannelConcat, None),
    "nn.Upsample": ModuleSpec(FrameUpsample, _parameter_free),
}


def register_module(name: str, cls: type[nn.Module], rule: Rule) -> None:
    """Make ``cls`` buildable from model YAMLs as ``name``, its output channels given by ``rule``.

    A new block subclasses :class:`~spikeyolo.nn.spiking_block.SpikingBlock` (fusion, synapses,
    init and audit then follow from its declarations) and registers here from its own file.

    Raises:
        ValueError: ``name`` already names another class.
    """
    known = MODULES.get(name)
    if known is not None and known.cls is not cls:
        raise ValueError(f"module name {name!r} is taken by {known.cls.__module__}.{known.cls.__qualname__}")
    MODULES[name] = ModuleSpec(cls, rule)
