"""Firing-rate accounting: element-weighted means, gating, bounds and reports."""

import json

import pytest
import torch
from spikingjelly.activation_based import monitor as sj_monitor
from torch import nn

from spikeyolo.analysis import FiringRateMonitor
from spikeyolo.nn.neuron import ILIF


class TwoNeurons(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = ILIF()
        self.b = ILIF(max_count=2)

    def forward(self, x):
        return self.b(self.a(x) - 1.0)


def test_rates_are_weighted_by_elements_not_by_batches(tmp_path):
    net = TwoNeurons()
    batches = [torch.rand(1, 2, 3, 5, 5) * 5, torch.rand(1, 7, 3, 9, 9) * 5]  # different sizes
    with FiringRateMonitor(net) as monitor:
        for x in batches:
            net(x)
            net.a.reset(), net.b.reset()
    counts = []
    for x in batches:
        net.a.reset()
        counts.append(ILIF()(x))
    expected = sum(float(c.sum()) for c in counts) / sum(c.numel() for c in counts)
    rate_a, rate_b = monitor.rates()
    assert rate_a.rate == pytest.approx(expected, rel=1e-12)
    assert rate_a.elements == sum(x.numel() for x in batches)
    mean_of_means = sum(float(c.mean()) for c in counts) / len(counts)
    assert abs(rate_a.rate - mean_of_means) > 1e-3  # the reference's per-batch average would differ
    assert 0 <= rate_b.rate <= 2 and rate_b.D == 2
    saved = json.loads(monitor.save_json(tmp_path / "fr.json").read_text())
    assert saved["neurons"] == 2 and saved["rates"][0]["name"] == "a"


def test_sums_equal_spikingjelly_output_monitor_records():
    net = TwoNeurons()
    reference = sj_monitor.OutputMonitor(net, ILIF, lambda s: (float(s.sum(dtype=torch.float64)), s.numel()))
    with FiringRateMonitor(net) as monitor, reference:
        for shape in ((2, 3, 4, 5), (1, 1, 7, 2), (3, 2, 1, 9)):
            net(torch.rand(*shape) * 6 - 1)
            net.a.reset(), net.b.reset()
    for rate in monitor.rates():
        records = reference[rate.name]
        assert len(records) == 3
        assert rate.total == sum(total for total, _ in records) > 0
        assert rate.elements == sum(n for _, n in records)


def test_disabled_monitor_counts_nothing_and_detach_stops_counting():
    net = TwoNeurons()
    monitor = FiringRateMonitor(net).attach()
    monitor.enabled = False
    net(torch.ones(1, 4) * 3)
    assert all(r.elements == 0 for r in monitor.rates())
    monitor.enabled = True
    net(torch.ones(1, 4) * 3)
    monitor.detach()
    net(torch.ones(1, 4) * 3)
    assert monitor.rates()[0].elements == 4 and monitor.rates()[0].rate == 3.0


def test_rate_above_D_fails_loudly():
    monitor = FiringRateMonitor(TwoNeurons())
    monitor._totals[1], monitor._elements[1] = 10.0, 2  # 5 > D = 2: not I-LIF counts
    with pytest.raises(RuntimeError, match="exceeds D=2"):
        monitor.rates()


def test_model_without_neurons_is_refused():
    with pytest.raises(ValueError, match="no I-LIF neurons"):
        FiringRateMonitor(nn.Conv2d(3, 3, 1))


def test_table_lists_every_neuron():
    net = TwoNeurons()
    with FiringRateMonitor(net) as monitor:
        net(torch.full((1, 3), 2.0))
    table = monitor.format_table()
    assert "2 neurons, mean rate" in table and " a " in table
