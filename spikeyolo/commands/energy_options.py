"""The energy keys shared by ``spikeyolo val energy=True`` and ``spikeyolo energy``."""

from __future__ import annotations

from ultralytics.utils.checks import check_imgsz

from ..analysis import energy_costs
from ..analysis.energy import FIRST_LAYER_CONVENTIONS
from .arguments import UsageError

ENERGY_KEYS = {"energy_preset": str, "first_layer": str}


def pop_energy_options(args: dict) -> dict:
    """Remove and check ``energy_preset`` and ``first_layer`` from ``args``; unknown values fail before any work."""
    options = {"preset": str(args.pop("energy_preset", "fp32")), "first_layer": str(args.pop("first_layer", "mac"))}
    energy_costs(options["preset"])
    if options["first_layer"] not in FIRST_LAYER_CONVENTIONS:
        raise UsageError(f"first_layer must be one of {FIRST_LAYER_CONVENTIONS}, got '{options['first_layer']}'")
    return options


def nominal_imgsz(model, imgsz: int | None) -> int:
    """The square size MACs are counted at: ``imgsz`` (or the checkpoint's), rounded up to the stride like ultralytics."""
    return check_imgsz(int(imgsz or model.overrides.get("imgsz", 640)), stride=int(model.model.stride.max()))
