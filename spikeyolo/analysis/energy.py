"""Theoretical energy of a SpikeYOLO model: synaptic operations × energy per operation.

The usual estimate of the SNN literature (and SpikeYOLO's paper)::

    SOPs_ℓ = fr_ℓ × MACs_ℓ                     (per image; fr already includes D and T)
    E_SNN  = E_AC × Σ_ℓ SOPs_ℓ + E_MAC × MACs(first, real-valued convolution)
    E_ANN  = E_MAC × Σ_ℓ MACs_ℓ                (the same convolutions run by a dense network)

``MACs`` are the dense re-parameterised view (:mod:`spikeyolo.analysis.synops`). Only the
convolutions fed by neurons and the first convolution are charged; BatchNorm (folded),
residual additions, pooling, upsampling, the DFL and memory traffic cost nothing, as in the paper.

Energy per operation comes from spikingjelly's op_counter presets (``SimpleEnergyCostConfig``),
which cite M. Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm):
fp32 E_MAC 4.6 pJ / E_AC 0.9 pJ, fp16 1.5 / 0.4 pJ, int8 0.23 / 0.03 pJ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from spikingjelly.activation_based.op_counter import SimpleEnergyCostConfig

from .synops import SynapseGeometry

HOROWITZ_2014 = "M. Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014, doi:10.1109/ISSCC.2014.6757323"

# How the first, real-valued convolution is charged in E_SNN.
FIRST_LAYER_CONVENTIONS = ("mac", "template")


@dataclass(frozen=True)
class EnergyCosts:
    """Energy per operation in pJ at one arithmetic precision."""

    name: str
    e_mac_pj: float
    e_ac_pj: float
    source: str = HOROWITZ_2014


def energy_costs(preset: str = "fp32") -> EnergyCosts:
    """The ``fp32``, ``fp16`` or ``int8`` preset of spikingjelly's op_counter (45 nm, Horowitz 2014)."""
    factories = {"fp32": SimpleEnergyCostConfig.fp32, "fp16": SimpleEnergyCostConfig.fp16, "int8": SimpleEnergyCostConfig.int8}
    if preset not in factories:
        raise ValueError(f"unknown energy preset '{preset}'; choose one of {sorted(factories)}")
    cfg = factories[preset]()
    return EnergyCosts(preset, float(cfg.e_mac_pj), float(cfg.e_ac_pj))


@dataclass
class EnergyRow:
    """One charged convolution.

    Attributes:
        geometry: where it is and its MACs (per image and time step).
        fr: firing rate of the feeding neuron, mean count per element including D and × T
            (``None`` for the first, real-valued convolution).
        sops: synaptic operations per image (``fr × MACs``; for the first layer its MACs × T).
        e_ann_pj: ``E_MAC × MACs``.
        e_snn_pj: ``E_AC × SOPs`` (first layer: ``E_MAC × MACs × T``, or the template's convention).
    """

    geometry: SynapseGeometry
    fr: float | None
    sops: float
    e_ann_pj: float
    e_snn_pj: float

    def as_dict(self) -> dict:
        """Flat dict of the geometry and the energy columns (for JSON and CSV)."""
        return {**asdict(self.geometry), "fr": self.fr, "sops": self.sops, "e_ann_pj": self.e_ann_pj, "e_snn_pj": self.e_snn_pj}


def energy_rows(
    geometry: Sequence[SynapseGeometry],
    rates: Mapping[str, float],
    costs: EnergyCosts,
    first_layer: str = "mac",
    max_rate: Mapping[str, float] | None = None,
) -> list[EnergyRow]:
    """Charge every convolution of ``geometry`` with the firing rate of the neuron feeding it.

    Args:
        geometry: rows of :func:`~spikeyolo.analysis.synops.synapse_geometry`.
        rates: neuron path → mean count per element and per time step (0..D), e.g. from a
            :class:`~spikeyolo.analysis.firing.FiringRateMonitor`; multiplied by the row's T here.
        costs: energy per operation.
        first_layer: ``"mac"`` charges the first convolution E_MAC per MAC (the usual formula);
            ``"template"`` reproduces the reference spreadsheet, which charges it E_AC × E_MAC
            (its firing-rate cell holds 4.6) per MAC.
        max_rate: neuron path → D, to reject impossible rates (default: no bound but ≥ 0).

    Raises:
        KeyError: a neuron of ``geometry`` has no rate.
        ValueError: a rate is negative or above the neuron's D, or ``first_layer`` is unknown.
    """
    if first_layer not in FIRST_LAYER_CONVENTIONS:
        raise ValueError(f"first_layer must be one of {FIRST_LAYER_CONVENTIONS}, got '{first_layer}'")
    rows = []
    for g in geometry:
        e_ann = costs.e_mac_pj * g.macs
        if not g.spiking:
            per_mac = costs.e_mac_pj if first_layer == "mac" else costs.e_ac_pj * costs.e_mac_pj
            rows.append(EnergyRow(g, None, g.macs * g.T, e_ann, per_mac * g.macs * g.T))
            continue
        if g.name not in rates:
            raise KeyError(f"no firing rate for neuron {g.name}")
        rate = float(rates[g.name])
        bound = None if max_rate is None else max_rate.get(g.name)
        if rate < 0 or (bound is not None and rate > bound + 1e-9):
            raise ValueError(f"neuron {g.name}: firing rate {rate:g} outside 0..D={bound}; not an I-LIF count")
        fr = rate * g.T
        sops = fr * g.macs
        rows.append(EnergyRow(g, fr, sops, e_ann, costs.e_ac_pj * sops))
    return rows


def energy_totals(rows: Sequence[EnergyRow], costs: EnergyCosts) -> dict:
    """Sums over ``rows``: MACs (dense and executed), SOPs, E_ANN and E_SNN in mJ and their ratio."""
    macs = sum(r.geometry.macs for r in rows)
    e_ann = sum(r.e_ann_pj for r in rows) / 1e9
    e_snn = sum(r.e_snn_pj for r in rows) / 1e9
    return {
        "preset": costs.name,
        "e_mac_pj": costs.e_mac_pj,
        "e_ac_pj": costs.e_ac_pj,
        "source": costs.source,
        "macs": macs,
        "executed_macs": sum(r.geometry.executed_macs for r in rows),
        "sops": sum(r.sops for r in rows if r.fr is not None),
        "first_layer_macs": sum(r.geometry.macs * r.geometry.T for r in rows if r.fr is None),
        "e_ann_mj": e_ann,
        "e_snn_mj": e_snn,
        "ann_over_snn": e_ann / e_snn if e_snn else float("inf"),
    }
