"""A per-layer energy report of a measured model: table, totals, JSON, CSV and plots."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..nn.neuron import ILIF
from .energy import EnergyCosts, EnergyRow, energy_costs, energy_rows, energy_totals
from .firing import FiringRateMonitor
from .plots import plot_energy, plot_firing_rates
from .synops import synapse_geometry


@dataclass
class EnergyReport:
    """Rows (first convolution, then one per neuron) and totals at one input size.

    Attributes:
        rows: the charged convolutions.
        totals: :func:`~spikeyolo.analysis.energy.energy_totals` plus ``imgsz``.
        costs: energy per operation used.
    """

    rows: list[EnergyRow]
    totals: dict
    costs: EnergyCosts

    @classmethod
    def from_rows(cls, rows: list[EnergyRow], costs: EnergyCosts, imgsz: int, first_layer: str) -> EnergyReport:
        """Total ``rows`` and record the input size and first-layer convention with the totals."""
        return cls(rows, {**energy_totals(rows, costs), "imgsz": imgsz, "first_layer": first_layer}, costs)

    def format_table(self) -> str:
        """Fixed-width table: layer, module, neuron, fr, MACs, SOPs, E_SNN and E_ANN in pJ; then totals."""
        lines = [f"{'layer':>5}  {'module':<30} {'neuron':<12} {'fr':>7} {'MACs':>14} {'SOPs':>14} {'E_SNN pJ':>14} {'E_ANN pJ':>14}"]
        for r in self.rows:
            g = r.geometry
            module, _, neuron = g.name.rpartition(".") if g.spiking else (g.conv, "", "(pixels)")
            fr = "MAC" if r.fr is None else f"{r.fr:.4f}"
            lines.append(f"{g.layer:>5}  {module:<30} {neuron:<12} {fr:>7} {g.macs:>14,} {r.sops:>14,.0f} {r.e_snn_pj:>14,.0f} {r.e_ann_pj:>14,.0f}")
        t = self.totals
        lines.append(
            f"{len(self.rows)} convolutions at {t['imgsz']}×{t['imgsz']} ({t['preset']}: E_MAC {t['e_mac_pj']} pJ, E_AC {t['e_ac_pj']} pJ): "
            f"MACs {t['macs'] / 1e9:.2f} G (executed {t['executed_macs'] / 1e9:.2f} G), SOPs {t['sops'] / 1e9:.2f} G, "
            f"E_ANN {t['e_ann_mj']:.2f} mJ, E_SNN {t['e_snn_mj']:.2f} mJ, E_ANN/E_SNN {t['ann_over_snn']:.2f}"
        )
        return "\n".join(lines)

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``energy.json``, ``energy.csv``, ``firing_rates.png`` and ``energy.png``; return their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        records = [r.as_dict() for r in self.rows]
        json_path = directory / "energy.json"
        json_path.write_text(json.dumps({"totals": self.totals, "rows": records}, indent=1))
        csv_path = directory / "energy.csv"
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        return [json_path, csv_path, plot_firing_rates(self.rows, directory / "firing_rates.png"),
                plot_energy(self.rows, directory / "energy.png")]


def energy_report(
    model: nn.Module,
    monitor: FiringRateMonitor,
    imgsz: int,
    preset: str = "fp32",
    first_layer: str = "mac",
    frames: int | None = None,
) -> EnergyReport:
    """Charge ``model``'s synapses at ``imgsz`` with the firing rates accumulated in ``monitor``.

    Args:
        model: the ``SpikeDetectionModel`` the monitor watched.
        monitor: filled with at least one forward pass of data.
        imgsz: nominal square input size in pixels for the MAC counts (the paper uses 640).
        preset: ``fp32``, ``fp16`` or ``int8`` energy per operation.
        first_layer: ``mac`` or ``template`` (see :func:`~spikeyolo.analysis.energy.energy_rows`).
        frames: T of event input ``[B, T, C, H, W]``; ``None`` for images.

    Raises:
        ValueError: the monitor saw no data, a rate exceeds D, or ``imgsz`` does not fit the stride.
    """
    rates = monitor.rates()
    if not any(r.elements for r in rates):
        raise ValueError("no firing rates were measured: the data produced no forward pass")
    costs = energy_costs(preset)
    max_rate = {name: m.max_count for name, m in model.named_modules() if isinstance(m, ILIF)}
    rows = energy_rows(synapse_geometry(model, imgsz, frames), {r.name: r.rate for r in rates}, costs, first_layer, max_rate)
    return EnergyReport.from_rows(rows, costs, imgsz, first_layer)
