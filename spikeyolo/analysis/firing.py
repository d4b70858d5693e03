"""Per-neuron firing rates, accumulated exactly over any number of forward passes.

A neuron's firing rate is its mean integer output per element and per time step (0..D): the
average number of binary spikes per neuron over the D virtual steps. It is the total of all
outputs divided by the total number of output elements, so batches of different sizes (rect
validation batches, a short last batch) are weighted by their elements, not equally.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..nn.neuron import ILIF


@dataclass
class NeuronRate:
    """Firing statistics of one neuron module.

    Attributes:
        name: module path in the model, e.g. ``model.2.Conv.lif1``.
        layer: index of the YAML layer it belongs to (-1 if unknown).
        D: the neuron's maximum count per time step.
        elements: output elements observed (T·B·C·H·W summed over calls).
        total: sum of all integer outputs.
        rate: ``total / elements``, mean count per element and time step, in [0, D].
    """

    name: str
    layer: int
    D: int
    elements: int
    total: float
    rate: float


class FiringRateMonitor:
    """Forward hooks on every I-LIF of ``model`` that sum outputs and element counts.

    Use as a context manager or with :meth:`attach` / :meth:`detach`. Counting can be paused
    (``monitor.enabled = False``), e.g. during a warm-up pass. Sums are kept in float64 on the CPU
    per neuron, so memory does not grow with the amount of data. Hooks travel with deep copies of
    the model and count into the same sums: ultralytics validates a copy. Gate counting with
    ``enabled`` to leave out passes that are not data (FLOPs profiling, warm-up).

    Kept instead of spikingjelly's ``monitor.OutputMonitor``, which appends a record per neuron and
    forward even when reduced to ``(sum, numel)``: 13.0 KiB more per SpikeYOLO-n forward, against
    0.2 here (``python bench/spikingjelly_parity.py``); its records check these sums in the tests.
    """

    def __init__(self, model: nn.Module):
        self.neurons = [(name, m) for name, m in model.named_modules() if isinstance(m, ILIF)]
        if not self.neurons:
            raise ValueError(f"{type(model).__name__} has no I-LIF neurons: firing rates are defined for SpikeYOLO models")
        self.enabled = True
        self._handles: list = []
        self._totals = [0.0] * len(self.neurons)
        self._elements = [0] * len(self.neurons)

    def _hook(self, index: int):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            if not self.enabled:
                return
            self._totals[index] += float(output.detach().sum(dtype=torch.float64))
            self._elements[index] += output.numel()

        return hook

    def attach(self) -> FiringRateMonitor:
        """Register the hooks (idempotent)."""
        if not self._handles:
            self._handles = [m.register_forward_hook(self._hook(i)) for i, (_, m) in enumerate(self.neurons)]
        return self

    def detach(self) -> None:
        """Remove the hooks; the accumulated sums are kept."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._totals = [0.0] * len(self.neurons)
        self._elements = [0] * len(self.neurons)

    def __enter__(self) -> FiringRateMonitor:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def rates(self) -> list[NeuronRate]:
        """One :class:`NeuronRate` per neuron, in module order.

        Raises:
            RuntimeError: a neuron reported a rate above its D (impossible for an I-LIF).
        """
        rows = []
        for (name, m), total, n in zip(self.neurons, self._totals, self._elements):
            rate = total / n if n else 0.0
            if rate > m.max_count + 1e-9:
                raise RuntimeError(f"neuron {name}: firing rate {rate} exceeds D={m.max_count}; outputs are not I-LIF counts")
            layer = int(name.split(".")[1]) if name.startswith("model.") and name.split(".")[1].isdigit() else -1
            rows.append(NeuronRate(name, layer, m.max_count, n, total, rate))
        return rows

    def summary(self) -> dict:
        """Rates plus the element-weighted mean rate over all neurons and the share of silent neurons."""
        rows = self.rates()
        elements = sum(r.elements for r in rows)
        return {
            "neurons": len(rows),
            "mean_rate": sum(r.total for r in rows) / elements if elements else 0.0,
            "silent_neurons": sum(r.elements > 0 and r.total == 0 for r in rows),
            "rates": [asdict(r) for r in rows],
        }

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`summary` as JSON and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.summary(), indent=1))
        return path

    def format_table(self) -> str:
        """A fixed-width text table: index, layer, neuron, D, rate, rate/D."""
        lines = [f"{'#':>4} {'layer':>5}  {'neuron':<36} {'D':>2} {'rate':>8} {'rate/D':>8}"]
        for i, r in enumerate(self.rates()):
            lines.append(f"{i:>4} {r.layer:>5}  {r.name:<36} {r.D:>2} {r.rate:>8.4f} {r.rate / r.D:>8.4f}")
        s = self.summary()
        lines.append(f"{len(lines) - 1} neurons, mean rate {s['mean_rate']:.4f}, silent {s['silent_neurons']}")
        return "\n".join(lines)
