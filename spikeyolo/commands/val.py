"""``spikeyolo val`` (and ``python test.py``): mAP and per-neuron firing rates, optionally energy.

Runs the stock ultralytics validator (mAP50, mAP50-95, per-class table; ``save_json=True`` adds
pycocotools mAP for COCO-format datasets) with hooks on every I-LIF, prints the firing-rate table
and writes ``firing_rates.json`` into the run directory.
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.data.utils import check_det_dataset

from ..analysis import energy_report, val_with_firing_rates
from ..engine.model import SpikeYOLO
from ..nn.precision import check_precision
from ..nn.training_keys import check_training_setting
from .arguments import UsageError, parse_arguments
from .energy_options import ENERGY_KEYS, nominal_imgsz, pop_energy_options
from .mode import Mode
from .reporting import print_metrics

USAGE = """usage: {prog} model=best.pt [key=value ...]   (any ultralytics val key: https://docs.ultralytics.com/usage/cfg/)

  {prog} model=best.pt                       # on the dataset the checkpoint was trained on
  {prog} model=best.pt data=data.yaml        # mAP50, mAP50-95 and every neuron's firing rate
  {prog} model=best.pt spike_driven=True     # every synapse on binary spikes, verified
  {prog} model=best.pt amp=bf16              # bfloat16 autocast (fp32, exact, by default)
  {prog} model=best.pt bn_recalibrate=8      # BatchNorm statistics from 8 training batches first
  {prog} model=best.pt energy=True [energy_preset=fp32|fp16|int8 first_layer=mac|template]

Writes firing_rates.json into the run directory; energy=True adds energy.json, energy.csv,
firing_rates.png and energy.png (synaptic operations and energy at imgsz). bn_recalibrate=N
recomputes every BatchNorm's statistics on N batches of the training split with the final weights
(for checkpoints of short runs, whose running statistics lag the weights)."""

# what a user looks at after a run, if the run wrote it
PICTURES = ("val_batch0_pred.jpg", "firing_rates.png", "energy.png")


def val(argv: list[str]) -> int:
    """Evaluate a checkpoint: mAP, firing-rate table and, with ``energy=True``, the energy report."""
    args = parse_arguments(argv, extra_keys={"energy": bool, "spike_driven": bool, "bn_recalibrate": None, **ENERGY_KEYS})
    energy = pop_energy_options(args) if args.pop("energy", False) else None
    if "model" not in args:
        raise UsageError("give the checkpoint to evaluate: model=path/to/best.pt")
    if "amp" in args:
        args["amp"] = check_precision(args["amp"])
    if "bn_recalibrate" in args:
        args["bn_recalibrate"] = check_training_setting("bn_recalibrate", args["bn_recalibrate"])
    model = SpikeYOLO(args.pop("model"))
    if "data" in args:
        check_det_dataset(args["data"], autodownload=False)  # a bad dataset fails here, clearly
    metrics, monitor = val_with_firing_rates(model, **args)
    print(monitor.format_table())
    print_metrics(metrics)
    print(f"firing rates: {metrics.save_dir}/firing_rates.json")
    if energy is not None:
        report = energy_report(model.model, monitor, nominal_imgsz(model, args.get("imgsz")), **energy)
        print(report.format_table())
        report.save(metrics.save_dir)
        print(f"energy: {metrics.save_dir}/energy.json, energy.csv, firing_rates.png, energy.png")
    if shown := [str(path) for name in PICTURES if (path := Path(metrics.save_dir) / name).exists()]:
        print("look at: " + "  ".join(shown))
    return 0


MODE = Mode("val", "mAP and per-neuron firing rates (as test.py); energy=True adds energy", USAGE, val)
