"""Test helper: cross-check of our synaptic-operation counts against spikingjelly's ``SynOpCounter``.

spikingjelly counts, operator by operator, the additions a convolution performs on a binary
input: one per spike per output it reaches. We run the model spike-driven (every neuron-fed
convolution receives D binary planes) under its ``DispatchCounterMode`` and compare per neuron
with the estimate ``fr × MACs`` of :mod:`spikeyolo.analysis.energy`. The two agree exactly for
1×1 convolutions; for k×k convolutions the estimate also charges the zero padding as if it
fired at the mean rate, so spikingjelly's count is lower by the border share of the map.
"""

from __future__ import annotations

from copy import deepcopy

import torch
from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter
from torch import nn

from spikeyolo.analysis import FiringRateMonitor, energy_costs, energy_rows, synapse_geometry
from spikeyolo.nn.synapses import synapses
from spikeyolo.spike import spike_driven


def spikingjelly_synops(model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Neuron path → SynOps per image of the convolution it feeds, by spikingjelly's ``SynOpCounter``.

    Args:
        model: a ``SpikeDetectionModel`` (deep-copied, left unchanged).
        images: ``[B, C, H, W]`` in [0, 1].
    """
    net = deepcopy(model).eval()
    counter = SynOpCounter()
    with spike_driven(net, check=False), DispatchCounterMode([counter]), torch.no_grad():
        net(images)
    counts = counter.get_counts()
    prefix = f"{type(net).__name__}."
    return {
        s.neuron: sum(counts.get(prefix + s.conv, {}).values()) / images.shape[0]
        for s in synapses(net)
    }


def compare_with_spikingjelly(model: nn.Module, images: torch.Tensor) -> list[dict]:
    """Per neuron on the same square ``images [B, C, S, S]``: our ``fr × MACs`` and spikingjelly's count.

    Returns:
        Rows with ``neuron``, ``k``, ``stride``, ``estimate`` (fr × MACs), ``spikingjelly`` (SynOps),
        both per image.
    """
    net = deepcopy(model).eval()
    with FiringRateMonitor(net) as monitor, torch.no_grad():
        net(images)
    rates = {r.name: r.rate for r in monitor.rates()}
    rows = energy_rows(synapse_geometry(net, images.shape[-1]), rates, energy_costs("fp32"))
    counted = spikingjelly_synops(net, images)
    return [
        {"neuron": r.geometry.name, "k": r.geometry.k, "stride": r.geometry.stride, "estimate": r.sops,
         "spikingjelly": counted[r.geometry.name]}
        for r in rows if r.fr is not None
    ]
