"""Measurements of spiking activity: firing rates (later: synaptic operations, energy)."""

from .firing import FiringRateMonitor, NeuronRate
from .validation import val_with_firing_rates

__all__ = ["FiringRateMonitor", "NeuronRate", "val_with_firing_rates"]
