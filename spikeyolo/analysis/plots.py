"""PNG plots of an energy report: firing rate per neuron, energy per layer (SNN against ANN)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from .energy import EnergyRow  # noqa: E402


def plot_firing_rates(rows: Sequence[EnergyRow], path: str | Path) -> Path:
    """Bar chart of every neuron's firing rate (mean count per element, × T), coloured by YAML layer."""
    spiking = [r for r in rows if r.fr is not None]
    fig, ax = plt.subplots(figsize=(max(8, len(spiking) * 0.12), 3.6))
    colours = plt.get_cmap("tab20")
    ax.bar(range(len(spiking)), [r.fr for r in spiking], color=[colours(r.geometry.layer % 20) for r in spiking])
    ax.set_xlabel("neuron (module order; colour = YAML layer)")
    ax.set_ylabel("firing rate (mean count)")
    ax.set_xlim(-1, len(spiking))
    ax.set_title(f"Firing rate of {len(spiking)} I-LIF neurons")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_energy(rows: Sequence[EnergyRow], path: str | Path) -> Path:
    """Grouped bars of energy per YAML layer in µJ: spiking (E_AC × SOPs) against dense (E_MAC × MACs)."""
    snn: dict[int, float] = defaultdict(float)
    ann: dict[int, float] = defaultdict(float)
    for r in rows:
        snn[r.geometry.layer] += r.e_snn_pj / 1e6
        ann[r.geometry.layer] += r.e_ann_pj / 1e6
    layers = sorted(snn)
    x = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(8, len(layers) * 0.35), 4.0))
    ax.bar([i - 0.2 for i in x], [ann[k] for k in layers], width=0.4, label="ANN (E_MAC × MACs)", color="tab:gray")
    ax.bar([i + 0.2 for i in x], [snn[k] for k in layers], width=0.4, label="SNN (E_AC × SOPs)", color="tab:orange")
    ax.set_xticks(list(x), [str(k) for k in layers], fontsize=7)
    ax.set_xlabel("YAML layer")
    ax.set_ylabel("energy per image (µJ)")
    ax.set_yscale("log")
    ax.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax.set_title(f"Energy per layer: ANN {sum(ann.values()) / 1e3:.2f} mJ, SNN {sum(snn.values()) / 1e3:.2f} mJ")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
