"""``spikeyolo train`` (and ``python train.py``): train a SpikeYOLO detector.

Without ``data=``, trains SpikeYOLO-n on the bundled synthetic dataset with the quick demo
recipe. With ``data=``, uses the reference SpikeYOLO recipe (SGD, lrf 0.004, 10 warm-up epochs,
patience 200, batch 40) on top of ultralytics' defaults; event data (a dataset YAML with an
``events`` block) instead trains the Gen1 model under the dataset's own ``hyp`` recipe. Any key given
on the command line wins. ``resume`` continues a run with its checkpoint's own arguments. Under
``torchrun`` every process runs this command; global rank 0 reports.
"""

from __future__ import annotations

from collections.abc import Sequence

from ultralytics.data.utils import check_det_dataset
from ultralytics.utils import RANK

from ..cfg.recipes import DEMO_RECIPE, REFERENCE_RECIPE
from ..data import default_dataset
from ..engine.model import SpikeYOLO
from ..events.config import is_event_data
from ..nn.training_keys import TRAINING_KEYS, check_training_setting
from .arguments import UsageError, parse_arguments
from .mode import Mode
from .reporting import print_metrics

USAGE = """usage: {prog} [key=value ...]   (any ultralytics train key: https://docs.ultralytics.com/usage/cfg/)

  {prog}                                                  # demo: SpikeYOLO-n on the bundled shapes
  {prog} model=snn_yolov8s.yaml data=coco.yaml epochs=300  # the reference recipe (SGD, lrf 0.004, ...)
  {prog} model=snn_yolov8s.yaml data=coco.yaml device=0,1,2,3 batch=40   # DDP: 10 images per GPU
  torchrun --nproc_per_node 4 -m spikeyolo train model=... data=... batch=40  # the same; --nnodes for machines
  {prog} model=runs/detect/train/weights/last.pt resume=True              # continue a stopped run
  {prog} data=datasets/gen1_T2/data.yaml                  # event data: the Gen1 model and recipe
  {prog} ... amp=bf16                                     # bfloat16 autocast on any device
  {prog} ... criterion=reference                          # the reference fork's loss (ultralytics 8.0.197)
  {prog} ... spike_budget=0.1                             # + 0.1 x kSOPs per pixel: fewer spikes (loss sop_loss)
  {prog} ... bn_recalibrate=8                             # exact BatchNorm statistics after every epoch

Without data= it trains on the bundled synthetic dataset with the quick CPU recipe; with data=,
the reference SpikeYOLO recipe. Keys given on the command line win; resume=True takes the
checkpoint's own. batch is the global batch, divisible by the number of processes."""


def build_train_args(argv: Sequence[str]) -> dict:
    """The full training arguments: recipe defaults updated with the user's ``key=value`` pairs.

    With ``resume``, only the user's: ultralytics resumes with the checkpoint's own arguments, and a
    recipe or the bundled dataset added here would rebuild a model that no longer fits it.

    Raises:
        UsageError: ``resume=True`` without ``model=`` (the checkpoint to resume).
        ValueError: a training setting (``criterion``, ``spike_budget``, ``bn_recalibrate``) breaks its
            rule (before a model or dataset is made).
    """
    user = parse_arguments(argv, extra_keys=dict.fromkeys(TRAINING_KEYS))  # checked below, by their own rules
    for key in TRAINING_KEYS.keys() & user.keys():
        check_training_setting(key, user[key])
    if resume := user.get("resume"):
        if "model" not in user and not isinstance(resume, str):
            raise UsageError("resume needs the checkpoint: model=path/to/weights/last.pt resume=True")
        return {"model": resume, **user}
    if is_event_data(user.get("data")):  # SpikeYOLO.train applies the dataset's hyp (the Gen1 recipe)
        return {"model": "snn_yolov8s-gen1.yaml", **user}
    recipe = dict(REFERENCE_RECIPE if "data" in user else DEMO_RECIPE)
    if "data" not in user:
        recipe["data"] = str(default_dataset())
    recipe.setdefault("model", "snn_yolov8n.yaml")
    return {**recipe, **user}


def train(argv: list[str]) -> int:
    """Train and print mAP50 / mAP50-95 of the best checkpoint."""
    args = build_train_args(argv)
    model = SpikeYOLO(args.pop("model"))
    if "data" in args:  # a bad dataset fails here, clearly, not mid-setup
        check_det_dataset(args["data"], autodownload=False)
    model.train(**args)
    if RANK > 0:  # a torchrun worker: global rank 0 reports
        return 0
    trainer = model.trainer
    # multi-GPU (DDP): the workers validated, not this process; the best checkpoint carries their metrics
    print_metrics(trainer.metrics if trainer.metrics is not None else model.ckpt["train_metrics"])
    print(f"weights: {trainer.best}")
    return 0


MODE = Mode("train", "train a detector (ultralytics train keys; criterion=reference, spike_budget=0.1)", USAGE, train)
