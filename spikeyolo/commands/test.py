"""``python test.py model=best.pt [data=...] [key=value ...]``: mAP and per-neuron firing rates.

Runs the stock ultralytics validator (mAP50, mAP50-95, per-class table; ``save_json=True`` adds
pycocotools mAP for COCO-format datasets) with hooks on every I-LIF, prints the firing-rate table
and writes ``firing_rates.json`` into the run directory. Without ``data=`` the checkpoint's own
dataset is used, and without ``model=`` nothing can be evaluated.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import yaml
from ultralytics.data.utils import check_det_dataset

from ..analysis import val_with_firing_rates
from ..engine.model import SpikeYOLO
from .arguments import UsageError, parse_arguments
from .reporting import print_metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate a checkpoint; returns an exit code."""
    try:
        args = parse_arguments(sys.argv[1:] if argv is None else argv)
        if "model" not in args:
            raise UsageError("give the checkpoint to evaluate: model=path/to/best.pt")
        model = SpikeYOLO(args.pop("model"))
        if "data" in args:
            check_det_dataset(args["data"], autodownload=False)  # a bad dataset fails here, clearly
    except (UsageError, FileNotFoundError, ValueError, TypeError, SyntaxError, RuntimeError, yaml.YAMLError) as e:
        print(f"test.py: error: {e}", file=sys.stderr)
        return 2
    metrics, monitor = val_with_firing_rates(model, **args)
    print(monitor.format_table())
    print_metrics(metrics)
    print(f"firing rates: {metrics.save_dir}/firing_rates.json")
    return 0
