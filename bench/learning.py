"""Learning efficiency: SpikeYOLO-n against stock YOLOv8n, trained from scratch in one run.

    python bench/learning.py [--recipe default|reference] [--difficulty hard easy] [--epochs 30] [--imgsz 96]

One row per ``--difficulty`` of the synthetic shapes (spikeyolo.data.synthetic ``DIFFICULTIES``:
``hard``, cluttered backgrounds and objects down to 8 % of the side; ``easy``, the bundled demo
data's kind), each with the generator's four classes at the default sizes (400 training and 100
validation images of 96 px). One row, both models, took 20 to 26 minutes on two CPU cores shared
with other jobs. ``--n-train 256 --n-val 64 --imgsz 64`` takes about a third of that.

Within a row both models train on the same generated set with the same ultralytics recipe and
number of epochs, in the same invocation: the issue's benchmark (batch 16, SGD lr0 0.01, lrf 0.004,
10 warm-up epochs) with nbs 16 and no mosaic; everything else ultralytics' defaults. YOLOv8n is
built offline from ultralytics' own ``yolov8n.yaml`` (no weights). ``--recipe`` selects SpikeYOLO's
side:

* ``reference``: the reference initialisation (``init: reference`` in the model YAML);
* ``default``: this package's defaults (the ``firing`` initialisation, spikeyolo.nn.init).

Prints the settings, mAP50-95 per epoch for both (from each run's results.csv), then a table with
one row per difficulty: best mAP50-95 of each model, their ratio (SpikeYOLO / YOLOv8) and the wall
times. Each invocation's figures go to ``<out>/learning-<recipe>.json``; the plot (``--plot``) shows
the curves of every recipe measured into ``<out>`` with the same data sizes and epochs, so running
both recipes gives the before/after figure.
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
from spikeyolo.data.synthetic import DIFFICULTIES, generate_dataset

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
    p.add_argument("--difficulty", nargs="+", choices=sorted(DIFFICULTIES), default=["hard", "easy"])
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


def train(kind: str, difficulty: str, data: Path, args: argparse.Namespace) -> dict:
    """Train one model; returns mAP50-95 per epoch (from results.csv) and the wall time in seconds."""
    name = f"{args.recipe}-{difficulty}-{kind}"
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


def plot(out: Path, path: Path, settings: dict) -> None:
    """One PNG with the mAP50-95 curves of every ``<out>/learning-*.json`` measured on data and epochs as ``settings``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    styles = {"spikeyolo": "-", "yolov8": "--"}
    same = ("epochs", "imgsz", "batch", "n_train", "n_val")
    for f in sorted(out.glob("learning-*.json")):
        res = json.loads(f.read_text())
        if any(res["settings"].get(k) != settings[k] for k in same) or "rows" not in res:
            continue
        for difficulty, models in res["rows"].items():
            for kind, r in models.items():
                model = "YOLOv8n" if kind == "yolov8" else f"SpikeYOLO-n, init={res['settings']['spikeyolo_init']}"
                label = f"{model}, {difficulty}"
                if any(line.get_label() == label for line in ax.get_lines()):
                    continue  # YOLOv8n does not depend on --recipe; one curve per data set is enough
                ax.plot(range(1, len(r["map50_95"]) + 1), r["map50_95"], styles[kind], label=label)
    s = settings
    ax.set(xlabel="epoch", ylabel="mAP50-95 (val)",
           title=f"{s['n_train']} images, {s['imgsz']} px, batch {s['batch']}, {s['optimizer']} lr0 {s['lr0']}, lrf {s['lrf']}, "
                 f"warm-up {s['warmup_epochs']:g}, nbs {s['nbs']}, mosaic {s['mosaic']:g}")
    save_plot(fig, ax, path)


def save_plot(fig, ax, path: Path) -> None:
    """The benches' plot style (small title, light grid, legend), written to ``path``."""
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    args = arguments()
    settings = {
        "recipe": args.recipe, "spikeyolo_init": INIT_OF_RECIPE[args.recipe], "epochs": args.epochs,
        "imgsz": args.imgsz, "batch": args.batch, "n_train": args.n_train, "n_val": args.n_val,
        "difficulty": args.difficulty, "threads": args.threads, **RECIPE, "cpu": platform.processor() or platform.machine(),
    }
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
    rows = {}
    for difficulty in args.difficulty:
        data = generate_dataset(args.out / f"data-{difficulty}-{args.n_train}-{args.n_val}-{args.imgsz}", args.n_train,
                                args.n_val, args.imgsz, difficulty=difficulty, progress=False)
        rows[difficulty] = {kind: train(kind, difficulty, data, args) for kind in args.models}
        for kind, r in rows[difficulty].items():
            print(f"{difficulty} {kind:9s} mAP50-95 per epoch: " + " ".join(f"{v:.3f}" for v in r["map50_95"]), flush=True)
    names = {"spikeyolo": "SpikeYOLO-n", "yolov8": "YOLOv8n"}
    print("\n" + f"{'data':<6}" + "".join(f"{'best mAP50-95 ' + names[k]:>26}" for k in args.models)
          + (f"{'ratio':>7}" if len(args.models) == 2 else "") + "   wall time " + " / ".join(names[k] for k in args.models))
    for difficulty, models in rows.items():
        best = {kind: max(r["map50_95"]) for kind, r in models.items()}
        ratio = f"{best['spikeyolo'] / max(best['yolov8'], 1e-9):>7.2f}" if len(models) == 2 else ""
        print(f"{difficulty:<6}" + "".join(f"{best[k]:>26.3f}" for k in models) + ratio + "   "
              + " / ".join(f"{models[k]['wall_s'] / 60:.1f}" for k in models) + " min")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    (args.out / f"learning-{args.recipe}.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))
    plot(args.out, args.plot, settings)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
