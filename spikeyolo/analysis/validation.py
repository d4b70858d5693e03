"""Validation that also measures every neuron's firing rate over the whole validation set."""

from __future__ import annotations

from pathlib import Path

from .firing import FiringRateMonitor


def val_with_firing_rates(model, **val_kwargs) -> tuple[object, FiringRateMonitor]:
    """Run ``model.val(**val_kwargs)`` with firing-rate hooks active during the validation loop only.

    Args:
        model: a ``SpikeYOLO`` (ultralytics ``Model``) holding a spiking detector.
        **val_kwargs: any ultralytics validation argument (``data``, ``imgsz``, ``batch`` ...).

    Returns:
        ``(metrics, monitor)``: the stock ``DetMetrics`` and the filled monitor. The rates are also
        written to ``<save_dir>/firing_rates.json``.
    """
    monitor = FiringRateMonitor(model.model)
    monitor.enabled = False  # the backend's warm-up pass must not count

    def start(_validator) -> None:
        monitor.enabled = True

    def end(_validator) -> None:
        monitor.enabled = False

    model.add_callback("on_val_start", start)
    model.add_callback("on_val_end", end)
    try:
        with monitor:
            metrics = model.val(**val_kwargs)
    finally:
        model.callbacks["on_val_start"].remove(start)
        model.callbacks["on_val_end"].remove(end)
    monitor.save_json(Path(metrics.save_dir) / "firing_rates.json")
    return metrics, monitor
