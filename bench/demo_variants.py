"""One `make demo` variant: bundled data settings + demo recipe changes → training time and mAP.

    python bench/demo_variants.py [--difficulty easy|hard] [--min-size F] [--max-objects N] [--clutter 0|1]
                                  [--classes a,b,c] [--data-imgsz 128] [--n-train 400] [--n-val 100]
                                  [--val] [key=value ...]

``key=value`` pairs are ultralytics train keys (and ``bn_recalibrate``) that replace the demo recipe's
(spikeyolo/cfg/recipes.py ``DEMO_RECIPE``); without any, the recipe is the demo's. The data is
generated with :func:`spikeyolo.data.generate_dataset` under ``<out>/data-...`` (the bundled default is
``--difficulty easy --classes circle,cross,star --data-imgsz 128 --n-train 400 --n-val 100``);
``--min-size``, ``--max-objects`` and ``--clutter`` change one setting of the named difficulty,
``--classes`` the shapes (default: the generator's four).

Prints the settings, mAP50 per epoch, the training wall time with the 1-minute load average before and
after (the machine may be shared: compare variants measured under similar load; ultralytics trains on
``cpu_count - 1`` threads), and mAP50 / mAP50-95 of best.pt. ``--val`` then evaluates best.pt as ``make demo``'s second step does, once without and once
with ``bn_recalibrate`` (``--val-recalibrate`` batches), printing mAP and the eval-mode mean firing rate
of each. Every result is appended as one JSON line to ``<out>/variants.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
from ultralytics.cfg import parse_key_value_pair

from spikeyolo import SpikeYOLO
from spikeyolo.analysis import val_with_firing_rates
from spikeyolo.cfg.recipes import DEMO_RECIPE
from spikeyolo.data.synthetic import DEFAULT_CLASSES, DIFFICULTIES, generate_dataset


def arguments() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="key=value changes to the demo recipe")
    p.add_argument("--difficulty", default="easy", help="a named difficulty, changed by the three options below")
    p.add_argument("--min-size", type=float, default=None, help="smallest object extent / image side")
    p.add_argument("--max-objects", type=int, default=None)
    p.add_argument("--clutter", type=int, choices=(0, 1), default=None)
    p.add_argument("--classes", default=",".join(DEFAULT_CLASSES), help="comma-separated shapes")
    p.add_argument("--data-imgsz", type=int, default=128, help="side of the generated images")
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--val", action="store_true", help="evaluate best.pt without and with bn_recalibrate")
    p.add_argument("--val-recalibrate", type=int, default=8, help="bn_recalibrate batches of the --val run")
    p.add_argument("--name", default=None, help="run name (default: from the settings)")
    p.add_argument("--out", type=Path, default=Path("runs/demo-variants"))
    args = p.parse_intermixed_args()
    args.out = args.out.resolve()
    return args


def evaluate(weights: Path, out: Path, name: str, bn_recalibrate: int) -> dict:
    """``make demo``'s evaluation of ``weights`` (mAP and every neuron's firing rate)."""
    metrics, monitor = val_with_firing_rates(SpikeYOLO(weights), project=str(out), name=name, exist_ok=True,
                                             bn_recalibrate=bn_recalibrate, plots=False, verbose=False)
    summary = monitor.summary()
    return {"bn_recalibrate": bn_recalibrate, "mAP50": float(metrics.box.map50), "mAP50-95": float(metrics.box.map),
            "mean_rate": summary["mean_rate"], "silent_neurons": summary["silent_neurons"]}


def main() -> None:
    args = arguments()
    overrides = dict(parse_key_value_pair(pair) for pair in args.overrides)
    recipe = {**DEMO_RECIPE, **overrides}
    changes = {"min_size_fraction": args.min_size, "max_objects": args.max_objects,
               "clutter": None if args.clutter is None else bool(args.clutter)}
    difficulty = replace(DIFFICULTIES[args.difficulty], **{k: v for k, v in changes.items() if v is not None})
    tag = "".join(f"-{k[:3]}{v:g}" for k, v in changes.items() if v is not None)
    classes = args.classes.split(",")
    if classes != list(DEFAULT_CLASSES):
        tag += "-" + "".join(c[:3] for c in classes)
    data_name = f"data-{args.difficulty}{tag}-{args.n_train}-{args.n_val}-{args.data_imgsz}"
    data = generate_dataset(args.out / data_name, args.n_train, args.n_val, args.data_imgsz, classes=classes,
                            difficulty=difficulty, progress=False)
    name = args.name or "-".join([data_name[5:], *(f"{k}{v}" for k, v in overrides.items())])
    print(f"variant {name}: data {data_name}, recipe " + " ".join(f"{k}={v}" for k, v in recipe.items()), flush=True)

    model = SpikeYOLO(recipe.pop("model"))
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    model.train(data=str(data), project=str(args.out), name=name, exist_ok=True, seed=0, **recipe)
    wall = time.perf_counter() - t
    load_after = os.getloadavg()[0]
    with open(args.out / name / "results.csv") as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    result = {
        "name": name, "data": data_name, "difficulty": asdict(difficulty), "recipe": recipe, "train_s": round(wall, 1),
        "load_before": load_before, "load_after": load_after,
        "mAP50": float(model.trainer.metrics["metrics/mAP50(B)"]),
        "mAP50-95": float(model.trainer.metrics["metrics/mAP50-95(B)"]),
        "mAP50_per_epoch": [float(r["metrics/mAP50(B)"]) for r in rows],
    }
    print("mAP50 per epoch: " + " ".join(f"{v:.3f}" for v in result["mAP50_per_epoch"]))
    print(f"{name}: training {wall / 60:.1f} min (load {load_before:.1f} -> {load_after:.1f}), "
          f"best.pt mAP50 {result['mAP50']:.3f}, mAP50-95 {result['mAP50-95']:.3f}", flush=True)
    if args.val:
        best = args.out / name / "weights" / "best.pt"
        result["val"] = [evaluate(best, args.out / name, f"val-bn{n}", n) for n in (0, args.val_recalibrate)]
        for r in result["val"]:
            print(f"val bn_recalibrate={r['bn_recalibrate']}: mAP50 {r['mAP50']:.3f}, mAP50-95 {r['mAP50-95']:.3f}, "
                  f"eval mean firing rate {r['mean_rate']:.4f}, silent neurons {r['silent_neurons']}")
    with open(args.out / "variants.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
