"""Why SpikeYOLO learns slower than YOLOv8 from scratch: measurements at init, after training, in short runs.

    python bench/learning_diagnostics.py silence            # firing per neuron layer at init
    python bench/learning_diagnostics.py silence --weights runs/learning/*-spikeyolo/weights/last.pt
    python bench/learning_diagnostics.py grads              # gradient norm per block at init
    python bench/learning_diagnostics.py sweep [--steps 60] # short runs, one factor changed at a time

Every experiment uses a small generated dataset (``--n-train`` images of ``--imgsz`` px, held in
memory). ``silence`` and ``grads`` take seconds. ``sweep`` trains with a plain loop and
ultralytics' v8 detection loss, one to two minutes per SpikeYOLO run of 60 steps on two free
cores (several times longer on a shared machine). The loop mirrors the ultralytics trainer where
it matters for learning speed: SGD (momentum 0.937, Nesterov) or AdamW, weight decay 5e-4 on conv weights only, a linear
warm-up, gradient clipping at norm 10, loss = sum over the batch. Measured per run: the training
loss (mean of the last 10 steps), the loss of the validation images in eval mode (BatchNorm
running statistics, as the validator sees the model), and the share of firing neuron outputs.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import cv2
import numpy as np
import torch
from torch import nn
from ultralytics.nn.tasks import DetectionModel

import spikeyolo.nn.neuron as neuron_module
from spikeyolo.data.synthetic import generate_dataset
from spikeyolo.nn import ILIF, SpikeDetectionModel, configure_neurons
from spikeyolo.nn.init import INIT_SCHEMES, apply_init

NC = 4  # classes of the bundled generator


# ------------------------------------------------------------------------------------------------
# Data: the generated set, decoded once into tensors
# ------------------------------------------------------------------------------------------------
def load_split(root: Path, split: str) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Images ``[N, 3, S, S]`` (RGB, 0..1) and labels (per image ``[n, 5]``: cls, cx, cy, w, h normalised)."""
    files = sorted((root / "images" / split).glob("*.jpg"))
    imgs = [cv2.imread(str(f))[:, :, ::-1] for f in files]
    labels = []
    for f in files:
        txt = root / "labels" / split / f"{f.stem}.txt"
        labels.append(np.loadtxt(txt, ndmin=2).reshape(-1, 5).astype(np.float32))
    x = torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).permute(0, 3, 1, 2).float() / 255
    return x, labels


def make_batch(x: torch.Tensor, labels: list[np.ndarray], idx: list[int]) -> dict[str, torch.Tensor]:
    """An ultralytics training batch for images ``idx``: img ``[B,3,S,S]``, batch_idx/cls ``[n(,1)]``, bboxes ``[n,4]``."""
    rows = [(i, labels[j]) for i, j in enumerate(idx)]
    lab = np.concatenate([r for _, r in rows]) if rows else np.zeros((0, 5), np.float32)
    bi = np.concatenate([np.full(len(r), i, np.float32) for i, r in rows])
    return {
        "img": x[idx],
        "batch_idx": torch.from_numpy(bi),
        "cls": torch.from_numpy(lab[:, :1]),
        "bboxes": torch.from_numpy(lab[:, 1:]),
    }


def dataset(imgsz: int, n_train: int, n_val: int, cache: Path) -> tuple:
    """Generate (or reuse) the synthetic set and return ``(x_train, y_train, x_val, y_val)``."""
    root = generate_dataset(cache / f"diag-{n_train}-{n_val}-{imgsz}", n_train, n_val, imgsz, progress=False).parent
    return (*load_split(root, "train"), *load_split(root, "val"))


# ------------------------------------------------------------------------------------------------
# Models and knobs
# ------------------------------------------------------------------------------------------------
def build(kind: str, init: str = "reference", T: int = 1, D: int = 4) -> nn.Module:
    """A fresh detector for NC classes: ``kind`` ``spikeyolo`` (SpikeYOLO-n) or ``yolov8`` (YOLOv8n)."""
    torch.manual_seed(0)
    if kind == "yolov8":
        model = DetectionModel("yolov8n.yaml", nc=NC, verbose=False)
    else:
        model = SpikeDetectionModel("snn_yolov8n.yaml", nc=NC, verbose=False, init="reference")
        model.model[0].T = T
        configure_neurons(model, max_count=D)
        apply_init(model, init)
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    return model


class _WideWindow(torch.autograd.Function):
    """round(clamp(u, 0, D)) with the straight-through window widened to ``[-w, D + w]``."""

    @staticmethod
    def forward(ctx, u, max_count, w):
        ctx.save_for_backward((u >= -w) & (u <= max_count + w))
        return torch.round(torch.clamp(u, 0, max_count))

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved_tensors
        return g * inside, None, None


@contextmanager
def surrogate_window(width: float) -> Iterator[None]:
    """Train with the neuron's straight-through window widened by ``width`` on both sides (0: unchanged).

    Swaps the module-level function the I-LIF calls, for the duration of one experiment only.
    """
    original = neuron_module.quantize_count
    if width:
        def wide(u, max_count):
            if torch.is_grad_enabled() and u.requires_grad:
                return _WideWindow.apply(u, max_count, width)
            return original(u, max_count)
        neuron_module.quantize_count = wide
    try:
        yield
    finally:
        neuron_module.quantize_count = original


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------
def neuron_stats(model: nn.Module, x: torch.Tensor, train_mode: bool) -> list[tuple[str, float, float]]:
    """Per I-LIF layer ``(name, share of outputs > 0, share of membrane potentials inside [0, D])``.

    ``x`` is an image batch ``[B, 3, S, S]``. Train mode normalises with batch statistics (what the
    optimiser sees), eval mode with running statistics (what the validator sees). BN statistics
    are restored afterwards. The window share is the share of elements that pass a gradient.
    """
    stats, hooks = [], []
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name, m in model.named_modules():
        if isinstance(m, ILIF):
            def hook(mod, inp, out, name=name):
                v, win, tot = 0.0, 0.0, 0
                for x_t in inp[0]:  # replay the membrane to count gradient-passing potentials
                    u = mod.decay * v + mod.input_scale * x_t
                    s = torch.round(torch.clamp(u, 0, mod.max_count))
                    win += ((u >= 0) & (u <= mod.max_count)).sum().item()
                    tot += u.numel()
                    v = u - s
                stats.append((name, (out > 0).float().mean().item(), win / tot))
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.train(train_mode)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
        model.load_state_dict(state)
    return stats


def block_grad_norms(model: nn.Module, batch: dict) -> list[tuple[str, float, float, int]]:
    """Per top-level layer ``model.model[i]``: ``(name, loss-gradient L2 norm, weight L2 norm, parameters)``."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss, _ = model.loss(batch)
    loss.sum().backward()
    out = []
    for i, layer in enumerate(model.model):
        params = [p for p in layer.parameters() if p.grad is not None]
        if params:
            g = torch.cat([p.grad.flatten() for p in params]).norm().item()
            w = torch.cat([p.detach().flatten() for p in params]).norm().item()
            out.append((f"{i}:{type(layer).__name__}", g, w, sum(p.numel() for p in params)))
    model.zero_grad(set_to_none=True)
    return out


def make_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """Three groups as ultralytics builds them: decayed conv weights, BN weights, biases (no decay)."""
    decay, no_decay = [], []
    for m in model.modules():
        for pn, p in m.named_parameters(recurse=False):
            (decay if pn == "weight" and not isinstance(m, nn.modules.batchnorm._BatchNorm) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}]
    if name == "SGD":
        return torch.optim.SGD(groups, lr=lr, momentum=0.937, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def train_run(model: nn.Module, data: tuple, steps: int, batch: int, optimizer: str, lr: float, warmup: int) -> dict:
    """Train ``steps`` optimiser steps; returns losses, eval-mode validation loss and firing shares."""
    x, y, xv, yv = data
    opt = make_optimizer(model, optimizer, lr)
    g = torch.Generator().manual_seed(0)
    losses, t0 = [], time.perf_counter()
    order: list[int] = []
    for step in range(steps):
        if len(order) < batch:
            order += torch.randperm(len(x), generator=g).tolist()
        idx, order = order[:batch], order[batch:]
        for grp in opt.param_groups:
            grp["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))
        model.train()
        loss, items = model.loss(make_batch(x, y, idx))
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        losses.append(sum(v.item() for v in items.values()))
    model.eval()
    with torch.no_grad():
        vl = sum(sum(v.item() for v in model.loss(make_batch(xv, yv, list(range(i, min(i + batch, len(xv))))))[1].values())
                 for i in range(0, len(xv), batch)) / math.ceil(len(xv) / batch)
    return {"losses": losses, "val_loss_eval": vl, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------
def _print_silence(label: str, model: nn.Module, x: torch.Tensor, verbose: bool) -> None:
    for mode in ("eval", "train"):
        st = neuron_stats(model, x, mode == "train")
        fire = np.array([f for _, f, _ in st])
        win = np.array([w for _, _, w in st])
        print(f"{label:24s} {mode:5s}: silent layers {int((fire == 0).sum())}/{len(st)}, firing share median "
              f"{np.median(fire):.3f} (min {fire.min():.3f}), gradient window share median {np.median(win):.3f} "
              f"(min {win.min():.3f})", flush=True)
    if verbose:
        for (n, f, w), (_, fe, _) in zip(neuron_stats(model, x, True), neuron_stats(model, x, False)):
            print(f"    {n:32s} train fire {f:.3f} window {w:.3f} | eval fire {fe:.3f}")


def cmd_silence(args: argparse.Namespace, data: tuple) -> None:
    """Firing per neuron layer, eval and train mode, on validation images.

    Fresh SpikeYOLO-n for every init scheme, or the trained checkpoints given with ``--weights``
    (e.g. the benchmark's ``runs/learning/*-spikeyolo/weights/last.pt``: the EMA model).
    """
    x = data[2][: args.batch]
    if args.weights:
        from spikeyolo import SpikeYOLO

        for w in args.weights:
            _print_silence(str(w.parent.parent.name), SpikeYOLO(str(w)).model.float(), x, args.verbose)
        return
    for init in INIT_SCHEMES:
        _print_silence(f"init={init}", build("spikeyolo", init), x, args.verbose)


def cmd_grads(args: argparse.Namespace, data: tuple) -> None:
    """Gradient norm per top-level block at init, for SpikeYOLO-n variants and YOLOv8n.

    The ultralytics trainer clips the total gradient norm to 10, so when a few blocks dominate the
    norm every other block's step shrinks by the same factor; the head's share shows how much.
    """
    b = make_batch(data[0], data[1], list(range(args.batch)))
    variants = [(f"init={s}", "spikeyolo", s, 1, 4, 0.0) for s in INIT_SCHEMES] + [
        ("T=2", "spikeyolo", "reference", 2, 4, 0.0),
        ("D=1", "spikeyolo", "reference", 1, 1, 0.0),
        ("D=8", "spikeyolo", "reference", 1, 8, 0.0),
        ("window ±1", "spikeyolo", "reference", 1, 4, 1.0),
        ("yolov8n", "yolov8", "-", 1, 4, 0.0),
    ]
    for label, kind, init, T, D, window in variants:
        with surrogate_window(window):
            norms = block_grad_norms(build(kind, init, T, D), b)
        total = math.sqrt(sum(g * g for _, g, _, _ in norms))
        _, head, head_w, head_n = norms[-1]
        # Relative size of the head's first full-rate update: SGD (lr 0.01) after the trainer's
        # clipping of the total norm to 10, and AdamW (lr 0.00125, ultralytics "auto"), whose first
        # step moves every parameter by lr whatever the gradient's scale.
        sgd = 0.01 * head * min(1.0, 10.0 / total) / head_w
        adam = 0.00125 * math.sqrt(head_n) / head_w
        print(f"{label:16s} total {total:9.1f}  head {head:6.2f} ({head / total:5.1%} of the norm), head update "
              f"SGD+clip {sgd:.1e} AdamW {adam:.1e}  blocks: "
              + " ".join(f"{n.split(':')[0]}={g:.2g}" for n, g, _, _ in norms), flush=True)


def sweep_configs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """One factor at a time around the issue's recipe (SGD lr0 0.01, warm-up) for the reference init."""
    w = args.warmup
    base = {"kind": "spikeyolo", "init": "reference", "T": 1, "D": 4, "window": 0.0, "optimizer": "SGD", "lr": 0.01, "warmup": w}
    rows = [
        ("yolov8n", {**base, "kind": "yolov8"}),
        ("reference", base),
        *[(f"init={s}", {**base, "init": s}) for s in INIT_SCHEMES if s != "reference"],
        ("window ±1", {**base, "window": 1.0}),
        ("window ±4", {**base, "window": 4.0}),
        ("warm-up 1/4", {**base, "warmup": max(w // 4, 1)}),
        ("AdamW lr 0.00125 (auto)", {**base, "optimizer": "AdamW", "lr": 0.00125}),
        ("yolov8n AdamW (auto)", {**base, "kind": "yolov8", "optimizer": "AdamW", "lr": 0.00125}),
        ("T=2", {**base, "T": 2}),
        ("D=1", {**base, "D": 1}),
        ("D=8", {**base, "D": 8}),
    ]
    return [r for r in rows if not args.only or any(o in r[0] for o in args.only)]


def cmd_sweep(args: argparse.Namespace, data: tuple) -> None:
    """Short training runs, one factor changed at a time; prints loss and firing after training."""
    print(f"{'run':26s} {'loss@10':>8s} {'loss end':>9s} {'val loss (eval BN)':>18s} {'silent (eval)':>13s} "
          f"{'fire median (train)':>19s} {'s':>5s}")
    for label, c in sweep_configs(args):
        model = build(c["kind"], c["init"], c["T"], c["D"])
        with surrogate_window(c["window"]):
            r = train_run(model, data, args.steps, args.batch, c["optimizer"], c["lr"], c["warmup"])
        loss10 = np.mean(r["losses"][5:15])
        loss_end = np.mean(r["losses"][-10:])
        silent, fire = "-", "-"
        if c["kind"] == "spikeyolo":
            xs = data[2][: args.batch]
            ev = neuron_stats(model, xs, False)
            silent = f"{sum(1 for _, f, _ in ev if f == 0)}/{len(ev)}"
            fire = f"{np.median([f for _, f, _ in neuron_stats(model, xs, True)]):.3f}"
        print(f"{label:26s} {loss10:8.3f} {loss_end:9.3f} {r['val_loss_eval']:18.3f} {silent:>13s} {fire:>19s} "
              f"{r['seconds']:5.0f}", flush=True)


COMMANDS: dict[str, Callable[[argparse.Namespace, tuple], None]] = {
    "silence": cmd_silence, "grads": cmd_grads, "sweep": cmd_sweep,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--n-val", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps per sweep run")
    parser.add_argument("--warmup", type=int, default=20, help="linear warm-up steps of the base recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="sweep rows whose label contains one of these")
    parser.add_argument("--verbose", action="store_true", help="per-layer rows")
    parser.add_argument("--weights", nargs="*", type=Path, help="silence: trained checkpoints to measure")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "spikeyolo" / "bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = dataset(args.imgsz, args.n_train, args.n_val, args.cache)
    print(f"data: {args.n_train} train / {args.n_val} val images, {args.imgsz} px, batch {args.batch}, "
          f"{args.threads} threads")
    COMMANDS[args.command](args, data)


if __name__ == "__main__":
    main()
