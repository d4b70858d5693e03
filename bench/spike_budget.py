"""Spike budget trade-off: mAP50-95 against synaptic operations, SpikeYOLO-n trained with ``spike_budget=λ``.

    python bench/spike_budget.py --runs reference:0 firing:0 [firing:0.1 ...] [size options]
    python bench/spike_budget.py --collect [size options] [--plot docs/spike_budget.png]

Each ``--runs`` entry ``INIT:λ`` trains SpikeYOLO-n from scratch with that initialisation
(``reference`` or ``firing``, spikeyolo.nn.init) and ``spike_budget=λ`` on the same generated shapes
and with the same recipe as ``bench/learning.py`` (its ``RECIPE``: batch 16, SGD lr0 0.01, lrf 0.004,
10 warm-up epochs, nbs 16, no mosaic; the same size options, one ``--difficulty``). Then it
validates best.pt with a firing-rate monitor and charges the rates with the package's energy report
at the training image size (fp32 45 nm costs), and appends one JSON line per run to
``<out>/spike_budget.jsonl``: final and best mAP50-95, the mean firing rate (count per element,
0..D), SOPs per image, SOPs / dense MACs, E_SNN, E_ANN, the wall time and the mAP50-95 curve.

Runs are independent processes, so two can train at once, one per core (``--threads 1``, the
default): e.g. ``--runs reference:0 firing:0.1 firing:1`` in one shell and ``--runs firing:0
firing:0.3`` in another. ``--seed N`` trains with another ultralytics seed (each seed is deterministic).
``--collect`` prints a markdown table of every run in the file measured with
the same size options and plots best mAP50-95 against SOPs per image, the mean over the seeds of
each ``INIT:λ`` (``--plot``, default
``docs/spike_budget.png``). The data set is generated once, under a file lock.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from learning import RECIPE, save_plot, spikeyolo_yaml  # bench/ is on sys.path; it imports spikeyolo before ultralytics

from spikeyolo import SpikeYOLO
from spikeyolo.analysis import energy_report, val_with_firing_rates
from spikeyolo.data.synthetic import DIFFICULTIES, generate_dataset
from spikeyolo.nn.training_keys import check_training_setting
from spikeyolo.nn.init import INIT_SCHEMES

SIZE_KEYS = ("difficulty", "epochs", "imgsz", "batch", "n_train", "n_val")


def run_spec(text: str) -> tuple[str, float]:
    """``"firing:0.5"`` → ``("firing", 0.5)``."""
    init, _, budget = text.partition(":")
    if init not in INIT_SCHEMES:
        raise argparse.ArgumentTypeError(f"{text!r}: the initialisation is one of {', '.join(INIT_SCHEMES)}")
    try:
        return init, check_training_setting("spike_budget", float(budget))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: INIT:λ with λ a non-negative number ({e})") from None


def arguments() -> argparse.Namespace:
    """Command-line options; sets torch's thread count."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--runs", nargs="+", type=run_spec, metavar="INIT:λ", help="train these, one after another")
    what.add_argument("--collect", action="store_true", help="table and plot of every run measured so far")
    p.add_argument("--difficulty", choices=sorted(DIFFICULTIES), default="hard")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--imgsz", type=int, default=96)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="ultralytics' training seed (runs are deterministic per seed)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (two runs at once on two cores)")
    p.add_argument("--out", type=Path, default=Path("runs/spike_budget"), help="run directories, data and results")
    p.add_argument("--plot", type=Path, default=Path("docs/spike_budget.png"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out = args.out.resolve()
    return args


def sizes(args: argparse.Namespace) -> dict:
    """The options that must match for two runs to be compared."""
    return {k: getattr(args, k) for k in SIZE_KEYS}


def dataset(args: argparse.Namespace) -> Path:
    """The generated shapes set of these sizes (``bench/learning.py``'s folder naming), made once under a lock."""
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / ".data.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the set finished
        return generate_dataset(args.out / f"data-{args.difficulty}-{args.n_train}-{args.n_val}-{args.imgsz}",
                                args.n_train, args.n_val, args.imgsz, difficulty=args.difficulty, progress=False)


def train_and_measure(init: str, budget: float, data: Path, args: argparse.Namespace) -> dict:
    """Train one run, then mAP, firing rates and energy of its best.pt at the training image size."""
    name = f"{args.difficulty}-{args.imgsz}-{init}-{budget:g}" + (f"-seed{args.seed}" if args.seed else "")
    model = SpikeYOLO(str(spikeyolo_yaml(init, args.out / "cfg" / name)))
    t = time.perf_counter()
    model.train(
        data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=0, device="cpu",
        project=str(args.out), name=name, exist_ok=True, seed=args.seed, plots=False, verbose=False,
        spike_budget=budget, **RECIPE,
    )
    wall = time.perf_counter() - t
    with open(args.out / name / "results.csv") as f:
        curve = [float({k.strip(): v for k, v in r.items()}["metrics/mAP50-95(B)"]) for r in csv.DictReader(f)]
    best = SpikeYOLO(str(model.trainer.best))
    metrics, monitor = val_with_firing_rates(best, data=str(data), imgsz=args.imgsz, batch=args.batch, workers=0,
                                             device="cpu", plots=False, verbose=False,
                                             project=str(args.out / name), name="val", exist_ok=True)
    report = energy_report(best.model, monitor, args.imgsz)
    totals = report.totals
    spiking_macs = sum(r.geometry.T * r.geometry.macs for r in report.rows if r.fr is not None)
    return {
        "init": init, "spike_budget": budget, "seed": args.seed, **sizes(args), **RECIPE,
        "final_map50_95": curve[-1], "best_map50_95": max(curve), "val_map50_95": float(metrics.box.map),
        "mean_rate": monitor.summary()["mean_rate"], "sops": totals["sops"], "sops_per_mac": totals["sops"] / spiking_macs,
        "e_snn_mj": totals["e_snn_mj"], "e_ann_mj": totals["e_ann_mj"], "wall_s": wall, "map50_95": curve,
        "cpu": platform.processor() or platform.machine(),
    }


def load(args: argparse.Namespace) -> list[dict]:
    """Every run in ``<out>/spike_budget.jsonl`` measured with these sizes, the latest of each ``INIT:λ`` and seed."""
    path = args.out / "spike_budget.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    runs = {}
    for r in map(json.loads, lines):
        if all(r[k] == v for k, v in sizes(args).items()):
            runs[r["init"], r["spike_budget"], r.get("seed", 0)] = r
    return sorted(runs.values(), key=lambda r: (r["init"] != "reference", r["spike_budget"], r.get("seed", 0)))


def table(runs: list[dict]) -> str:
    """Markdown table, one row per run."""
    header = ("| init | spike_budget | seed | final mAP50-95 | best mAP50-95 | mean firing rate | SOPs / image (M) "
              "| SOPs / MACs | E_SNN (mJ) | E_ANN (mJ) | train min |")
    lines = [header, "|---" * 11 + "|"]
    for r in runs:
        lines.append(f"| {r['init']} | {r['spike_budget']:g} | {r.get('seed', 0)} | {r['final_map50_95']:.3f} | {r['best_map50_95']:.3f} "
                     f"| {r['mean_rate']:.3f} | {r['sops'] / 1e6:.1f} | {r['sops_per_mac']:.3f} | {r['e_snn_mj']:.3f} "
                     f"| {r['e_ann_mj']:.2f} | {r['wall_s'] / 60:.1f} |")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path, args: argparse.Namespace) -> None:
    """Best mAP50-95 against SOPs per image, one point per ``INIT:λ`` (the mean over its seeds), the firing runs
    joined in order of λ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=100)
    for init, marker in (("reference", "s"), ("firing", "o")):
        seeds: dict[float, list[dict]] = {}
        for r in runs:
            if r["init"] == init:
                seeds.setdefault(r["spike_budget"], []).append(r)
        points = {budget: (statistics.mean(r["sops"] / 1e6 for r in rs), statistics.mean(r["best_map50_95"] for r in rs))
                  for budget, rs in sorted(seeds.items())}
        ax.plot([x for x, _ in points.values()], [y for _, y in points.values()], marker=marker,
                linestyle="-" if init == "firing" else "none", label=f"init={init}")
        for budget, (x, y) in points.items():
            n = len(seeds[budget])
            ax.annotate(f"λ={budget:g}" + (f" ({n} seeds)" if n > 1 else ""), (x, y), fontsize=8,
                        textcoords="offset points", xytext=(4, 4))
    ax.set(xlabel=f"synaptic operations per image at {args.imgsz} px (M)", ylabel="best mAP50-95 (val)",
           title=f"SpikeYOLO-n, {args.difficulty} shapes, {args.n_train} images, {args.imgsz} px, {args.epochs} epochs")
    save_plot(fig, ax, path)


def main() -> None:
    args = arguments()
    if args.runs:
        data = dataset(args)
        for init, budget in args.runs:
            record = train_and_measure(init, budget, data, args)
            with open(args.out / "spike_budget.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(table([record]), flush=True)
        return
    runs = load(args)
    if not runs:
        raise SystemExit(f"no runs with {sizes(args)} in {args.out / 'spike_budget.jsonl'}")
    print(table(runs))
    plot(runs, args.plot.resolve(), args)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
