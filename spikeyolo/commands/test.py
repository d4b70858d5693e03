"""``python test.py model=best.pt [data=...] [energy=True] [key=value ...]``: mAP and firing rates.

Runs the stock ultralytics validator (mAP50, mAP50-95, per-class table; ``save_json=True`` adds
pycocotools mAP for COCO-format datasets) with hooks on every I-LIF, prints the firing-rate table
and writes ``firing_rates.json`` into the run directory. Without ``data=`` the checkpoint's own
dataset is used, and without ``model=`` nothing can be evaluated. ``energy=True`` adds the
per-layer synaptic operations and energy at ``imgsz`` (``energy_preset=fp32|fp16|int8``,
``first_layer=mac|template``) with ``energy.json``, ``energy.csv`` and two PNG plots. ``amp=bf16``
evaluates under bfloat16 autocast (``amp=fp32``, exact, is the default of a model trained in fp32).
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Sequence

import yaml
from ultralytics.data.utils import check_det_dataset

from ..analysis import energy_report, val_with_firing_rates
from ..engine.model import SpikeYOLO
from ..nn.precision import check_precision
from .arguments import UsageError, parse_arguments
from .energy import ENERGY_KEYS, nominal_imgsz, pop_energy_options
from .reporting import print_metrics


def main(argv: Sequence[str] | None = None, prog: str = "test.py") -> int:
    """Evaluate a checkpoint; returns an exit code. ``prog`` names the command in error messages."""
    try:
        args = parse_arguments(sys.argv[1:] if argv is None else argv, extra_keys=("energy", *ENERGY_KEYS))
        energy = pop_energy_options(args) if args.pop("energy", False) else None
        if "model" not in args:
            raise UsageError("give the checkpoint to evaluate: model=path/to/best.pt")
        if "amp" in args:
            args["amp"] = check_precision(args["amp"])
        model = SpikeYOLO(args.pop("model"))
        if "data" in args:
            check_det_dataset(args["data"], autodownload=False)  # a bad dataset fails here, clearly
    except (UsageError, FileNotFoundError, ValueError, TypeError, SyntaxError, RuntimeError, yaml.YAMLError, pickle.UnpicklingError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    metrics, monitor = val_with_firing_rates(model, **args)
    print(monitor.format_table())
    print_metrics(metrics)
    print(f"firing rates: {metrics.save_dir}/firing_rates.json")
    if energy is not None:
        report = energy_report(model.model, monitor, nominal_imgsz(model, args.get("imgsz")), **energy)
        print(report.format_table())
        report.save(metrics.save_dir)
        print(f"energy: {metrics.save_dir}/energy.json, energy.csv, firing_rates.png, energy.png")
    return 0
