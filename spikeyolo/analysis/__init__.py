"""Measurements of spiking activity: firing rates, synaptic operations and energy."""

from .energy import EnergyCosts, energy_costs, energy_rows, energy_totals
from .energy_report import EnergyReport, energy_report
from .firing import FiringRateMonitor, NeuronRate
from .image_rates import measure_rates_on_images
from .synops import SynapseGeometry, synapse_geometry
from .validation import val_with_firing_rates

__all__ = [
    "EnergyCosts",
    "EnergyReport",
    "FiringRateMonitor",
    "NeuronRate",
    "SynapseGeometry",
    "energy_costs",
    "energy_report",
    "energy_rows",
    "energy_totals",
    "measure_rates_on_images",
    "synapse_geometry",
    "val_with_firing_rates",
]
