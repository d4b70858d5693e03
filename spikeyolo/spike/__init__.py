"""Spike-driven (binary) execution of SpikeYOLO models and its checks."""

from .driven import SpikeDrivenConv, spike_driven

__all__ = ["SpikeDrivenConv", "spike_driven"]
