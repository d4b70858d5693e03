"""``python train.py [key=value ...]``: train a SpikeYOLO detector.

Without ``data=``, trains SpikeYOLO-n on the bundled synthetic dataset with the quick demo
recipe. With ``data=``, uses the reference SpikeYOLO recipe (SGD, lrf 0.004, 10 warm-up epochs,
patience 200, batch 40) on top of ultralytics' defaults; event data (a dataset YAML with an
``events`` block) instead trains the Gen1 model under the dataset's own ``hyp`` recipe. Any key given
on the command line wins.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import yaml
from ultralytics.data.utils import check_det_dataset

from ..cfg.recipes import DEMO_RECIPE, REFERENCE_RECIPE
from ..data import default_dataset
from ..engine.model import SpikeYOLO
from ..events.config import is_event_data
from .arguments import UsageError, parse_arguments
from .reporting import print_metrics


def build_train_args(argv: Sequence[str]) -> dict:
    """The full training arguments: recipe defaults updated with the user's ``key=value`` pairs."""
    user = parse_arguments(argv)
    if is_event_data(user.get("data")):  # SpikeYOLO.train applies the dataset's hyp (the Gen1 recipe)
        return {"model": "snn_yolov8s-gen1.yaml", **user}
    recipe = dict(REFERENCE_RECIPE if "data" in user else DEMO_RECIPE)
    if "data" not in user:
        recipe["data"] = str(default_dataset())
    recipe.setdefault("model", "snn_yolov8n.yaml")
    return {**recipe, **user}


def main(argv: Sequence[str] | None = None, prog: str = "train.py") -> int:
    """Train and print mAP50 / mAP50-95 of the best checkpoint; returns an exit code.

    ``prog`` names the command in error messages.
    """
    try:
        args = build_train_args(sys.argv[1:] if argv is None else argv)
        model = SpikeYOLO(args.pop("model"))
        check_det_dataset(args["data"], autodownload=False)  # a bad dataset fails here, clearly, not mid-setup
    except (UsageError, FileNotFoundError, ValueError, TypeError, SyntaxError, RuntimeError, yaml.YAMLError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    model.train(**args)
    trainer = model.trainer
    # multi-GPU (DDP): the workers validated, not this process; the best checkpoint carries their metrics
    print_metrics(trainer.metrics if trainer.metrics is not None else model.ckpt["train_metrics"])
    print(f"weights: {trainer.best}")
    return 0
