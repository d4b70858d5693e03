"""Learning efficiency: SpikeYOLO-n against stock YOLOv8n, trained from scratch in one run.

    python bench/learning.py [--recipe default|reference] [--epochs 30] [--imgsz 96] [--n-train 400]

The default sizes are the issue's (400 training and 100 validation images of 96 px): one run of
both models took 26 minutes on two CPU cores shared with other jobs. ``--n-train 256 --n-val 64
--imgsz 64`` takes about a third of that.

Both models train on the same generated synthetic-shapes set with the same ultralytics recipe and
number of epochs: the issue's benchmark (batch 16, SGD lr0 0.01, lrf 0.004, 10 warm-up epochs)
with nbs 16 and no mosaic as in the demo recipe; everything else ultralytics' defaults. YOLOv8n is
built offline from ultralytics' own ``yolov8n.yaml`` (no weights). ``--recipe`` selects SpikeYOLO's
side:

* ``reference``: the reference initialisation (``init: reference`` in the model YAML);
* ``default``: this package's defaults (the ``firing`` initialisation, spikeyolo.nn.init).

Prints the settings, mAP50-95 per epoch for both (from each run's results.csv), the ratio of the
best mAP50-95 (SpikeYOLO / YOLOv8) and the wall times. Each run's figures go to
``<out>/learning-<recipe>.json``; the plot (``--plot``) shows the curves of every recipe measured
into ``<out>`` so far, so running both recipes gives the before/after figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
import yaml
from ultralytics import YOLO

from spikeyolo import SpikeYOLO
from spikeyolo.cfg import model_yaml_file
from spikeyolo.data.synthetic import generate_dataset

INIT_OF_RECIPE = {"reference": "reference", "default": "firing"}
# The recipe plus the short-run conventions of the demo recipe (spikeyolo/cfg/recipes.py):
# every batch an optimiser step (nbs = batch) and no mosaic. Measured here with ultralytics' nbs 64
# and mosaic (4 optimiser steps per epoch, 256 images of 64 px, 30 epochs): YOLOv8n 0.0085 and
# reference SpikeYOLO-n 0.0016 mAP50-95, too little signal to compare. The rest (momentum 0.937,
# weight decay 5e-4, flips, HSV) are ultralytics' defaults, for both models.
RECIPE = {"optimizer": "SGD", "lr0": 0.01, "lrf": 0.004, "warmup_epochs": 10.0, "nbs": 16, "mosaic": 0.0}


def arguments() -> argparse.Namespace:
    """Command-line options; sets torch's thread count."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=sorted(INIT_OF_RECIPE), default="default")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--imgsz", type=int, default=96)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", choices=["spikeyolo", "yolov8"], default=["spikeyolo", "yolov8"])
    p.add_argument("--out", type=Path, default=Path("runs/learning"), help="run directories and result JSONs")
    p.add_argument("--plot", type=Path, default=None, help="PNG of the curves (default <out>/learning.png)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out = args.out.resolve()
    args.plot = (args.plot or args.out / "learning.png").resolve()
    return args


def spikeyolo_yaml(init: str, directory: Path) -> Path:
    """SpikeYOLO-n's packaged YAML with ``init`` set, written as ``<directory>/snn_yolov8n.yaml``.

    The trainer rebuilds the model from this path, so the initialisation must live in the file.
    """
    cfg = yaml.safe_load(model_yaml_file("snn_yolov8n.yaml").read_text())
    cfg["init"] = init
    path = directory / "snn_yolov8n.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train(kind: str, data: Path, args: argparse.Namespace) -> dict:
    """Train one model; returns mAP50-95 per epoch (from results.csv) and the wall time in seconds."""
    name = f"{args.recipe}-{kind}"
    if kind == "spikeyolo":
        model = SpikeYOLO(str(spikeyolo_yaml(INIT_OF_RECIPE[args.recipe], args.out / "cfg" / args.recipe)))
    else:
        model = YOLO("yolov8n.yaml")
    t = time.perf_counter()
    model.train(
        data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=0, device="cpu",
        project=str(args.out), name=name, exist_ok=True, seed=0, plots=False, verbose=False, **RECIPE,
    )
    wall = time.perf_counter() - t
    with open(args.out / name / "results.csv") as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    return {"map50_95": [float(r["metrics/mAP50-95(B)"]) for r in rows], "wall_s": wall}


def plot(out: Path, path: Path) -> None:
    """One PNG with the mAP50-95 curves of every ``<out>/learning-*.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    styles = {"spikeyolo": "-", "yolov8": "--"}
    for f in sorted(out.glob("learning-*.json")):
        res = json.loads(f.read_text())
        for kind, r in res["models"].items():
            label = "YOLOv8n" if kind == "yolov8" else f"SpikeYOLO-n, init={res['settings']['spikeyolo_init']}"
            if kind == "yolov8" and any(line.get_label() == label for line in ax.get_lines()):
                continue  # YOLOv8n does not depend on --recipe; one curve is enough
            ax.plot(range(1, len(r["map50_95"]) + 1), r["map50_95"], styles[kind], label=label)
    s = res["settings"]
    ax.set(xlabel="epoch", ylabel="mAP50-95 (val)",
           title=f"{s['n_train']} images, {s['imgsz']} px, batch {s['batch']}, {s['optimizer']} lr0 {s['lr0']}, lrf {s['lrf']}, "
                 f"warm-up {s['warmup_epochs']:g}, nbs {s['nbs']}, mosaic {s['mosaic']:g}")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    args = arguments()
    data = generate_dataset(args.out / f"data-{args.n_train}-{args.n_val}-{args.imgsz}", args.n_train, args.n_val,
                            args.imgsz, progress=False)
    settings = {
        "recipe": args.recipe, "spikeyolo_init": INIT_OF_RECIPE[args.recipe], "epochs": args.epochs,
        "imgsz": args.imgsz, "batch": args.batch, "n_train": args.n_train, "n_val": args.n_val,
        "threads": args.threads, **RECIPE, "cpu": platform.processor() or platform.machine(),
    }
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
    models = {kind: train(kind, data, args) for kind in args.models}
    for kind, r in models.items():
        print(f"{kind:9s} mAP50-95 per epoch: " + " ".join(f"{v:.3f}" for v in r["map50_95"]))
    for kind, r in models.items():
        print(f"{kind:9s} best mAP50-95 {max(r['map50_95']):.3f}, wall time {r['wall_s'] / 60:.1f} min")
    if len(models) == 2:
        ratio = max(models["spikeyolo"]["map50_95"]) / max(max(models["yolov8"]["map50_95"]), 1e-9)
        print(f"ratio of best mAP50-95 (SpikeYOLO-n / YOLOv8n): {ratio:.2f}")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    (args.out / f"learning-{args.recipe}.json").write_text(json.dumps({"settings": settings, "models": models}, indent=1))
    plot(args.out, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
