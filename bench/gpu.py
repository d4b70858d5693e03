"""SpikeYOLO on a GPU: speed and memory against stock YOLOv8, and what each part of the CUDA path costs.

    python bench/gpu.py [--device cuda] [--scales s n] [--batch 16] [--imgsz 640] [--repeats 10]
                        [--budget 290] [--ablations | --no-ablations] [--ablation-budget 240] [--json PATH]
    python bench/gpu.py --device cpu --imgsz 64 --batch 2 --scales n --repeats 1   # the code path, on a CPU

Made to be run once on a machine one cannot come back to, so it never stops at a failure and
always leaves what it measured: every measurement runs under a time limit and the global budget
(skipped with "skipped: budget" when too little is left), an OOM or an error loses only its own
row, each result is printed as soon as it is measured (flushed) and appended as one JSON line to
``--json``, and a summary of everything measured so far is printed at the end (also after SIGTERM).

Main table, per scale (``--scales``; s first: the targets are set at s), SpikeYOLO and stock YOLOv8
of the same scale (``DetectionModel("yolov8s.yaml")``, no weights), freshly initialised with 80 classes:

- training step (forward + loss + backward, no optimiser; as bench/speed.py) at ``--batch``,
  ``--imgsz``, in fp32 and under fp16 and bf16 autocast: median ms of ``--repeats`` after warm-up;
- peak CUDA memory of each training step (``max_memory_allocated``, and reserved) over the timed steps;
- fused inference (``model.fuse()``, as ultralytics' val and predict run it) at batch 1 and 32
  (``--infer-batches``), fp32 and fp16 autocast: median ms and images/s;
- the first call of each (cuDNN autotuning included; ``--no-cudnn-benchmark`` turns it off),
  reported in its own table.

YOLOv8 is measured first, so that a slow SpikeYOLO cannot starve its yardstick of budget. On CUDA
every call is bracketed by ``torch.cuda.synchronize()``. Ratios: SpikeYOLO / YOLOv8 at the same
precision. Figures from the issue (one H200, torch 2.11, s, 640 px, batch 16) are printed beside
them when the settings match.

Ablations (``--ablations``, on by default on CUDA; scale ``--ablation-scale``), in this order, each a
variant of SpikeYOLO's CUDA path with its own time limit (``--variant-limit``) inside
``--ablation-budget``: a profile of the baseline fp32 training step (top kernels); SepConv's
depthwise 7×7 convolutions channels-last in fp32 training too (``layout_of_depthwise``); uint8
saved counts off (counts kept as fp32, bench/speed.py's variant); in child processes (cuDNN keeps
the plans it chose per shape for a process's life): cuDNN autotuning off, then ultralytics'
training settings (``deterministic=True``, its default: deterministic algorithms and cuDNN plans,
autotuning off, as ``spikeyolo train`` runs), then deterministic with autotuning; channels-first layout
(``spikeyolo.nn.layout``: weights and activations); the neuron's clamp + round + window mask
compiled into one kernel (``torch.compile`` of ``quantize_count``); the neuron's steps run by
spikingjelly's I-LIF kernels (``functional.ilif_multi_step``); CUDA graphs for batch-1 fused
inference (SpikeYOLO and YOLOv8); the whole model compiled (``torch.compile(model)`` as
bench/compile.py does; the first calls are the compile times), which gets whatever budget is
left (``--no-compile-model`` leaves it out). The baseline row is the main table's when it has one.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from unittest import mock

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
from ultralytics.utils.torch_utils import init_seeds

from spikeyolo.nn import layout, neuron
from spikeyolo.nn.precision import AUTOCAST_DTYPES, autocast_for
from spikeyolo.nn.saved_counts import mark_counts
from speed import build, counts_saved_as_float, training_batch

PRECISIONS = ("fp32", "fp16", "bf16")
# Issue 18, one H200 (torch 2.11, cudnn.benchmark, s, 640 px, 80 classes, train batch 16):
# the reference SpikeYOLO implementation and stock YOLOv8s; peak memory in GiB, else ms.
ISSUE_H200 = {
    ("train", 16, "fp32"): (176.7, 45.2),
    ("train", 16, "fp16"): (148.9, 47.9),
    ("peak", 16, "fp32"): (36.9, 10.6),
    ("infer", 1, "fp32"): (23.6, 4.2),
    ("infer", 32, "fp32"): (86.1, 14.6),
    ("infer", 32, "fp16"): (65.2, 12.1),
}
# Issue 18's targets for SpikeYOLO-s at 640 px on an H200: ms or GiB, or a ratio to YOLOv8 ("x").
TARGETS = {
    ("train", 16, "fp32"): (88, "ms"),
    ("train", 16, "fp16"): (75, "ms"),
    ("peak", 16, "fp32"): (18, "GiB"),
    ("infer", 32, "fp32"): (2.5, "x"),
    ("infer", 32, "fp16"): (2.5, "x"),
}
START = time.monotonic()


class Timeout(BaseException):
    """A measurement ran past its limit (BaseException: no ``except Exception`` on the way swallows it)."""


def elapsed() -> str:
    return f"[{time.monotonic() - START:6.1f} s]"


def say(*lines: str, err: bool = False) -> None:
    print(*lines, sep="\n", file=sys.stderr if err else sys.stdout, flush=True)


class Budget:
    """Seconds left until a deadline."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Timeout` in this (main) thread after ``seconds``; no limit off the main thread.

    A signal handler runs between Python bytecodes, so a long call into C++ (one cuDNN autotuning
    pass, a backward pass) finishes first; the limit is then overrun by at most that call.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise Timeout(f"time limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Recorder:
    """Keeps every result, appends each as one JSON line to ``path`` (opened and closed per line)."""

    def __init__(self, path: str | None):
        self.path = path
        self.results: list[dict] = []
        self.ablation_rows: list[str] = []  # markdown, printed again in the summary

    def write(self, record: dict) -> dict:
        record = {"t_s": round(time.monotonic() - START, 2), **record}
        self.results.append(record)
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(record, default=str) + "\n")
        return record

    def find(self, **keys) -> dict | None:
        for r in reversed(self.results):
            if all(r.get(k) == v for k, v in keys.items()):
                return r
        return None


class Bench:
    """Device, settings, budget and the measurement loop shared by the main table and the ablations."""

    def __init__(self, args: argparse.Namespace, device: torch.device, recorder: Recorder):
        self.args, self.device, self.rec = args, device, recorder
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def cleanup(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def measure(
        self,
        keys: dict,
        make_step: Callable[[], Callable[[], object]],
        budget: Budget,
        *,
        limit: float | None = None,
        memory: bool = False,
        after: Callable[[], None] | None = None,
        echo: bool = True,
    ) -> dict:
        """Time ``make_step()()``: setup, first call, warm-up, then up to ``--repeats`` timed calls.

        Fewer timed calls when the limit would not allow them all (``n`` says how many). Never
        raises (but for KeyboardInterrupt/SystemExit): the record's ``status`` says what happened.
        """
        args = self.args
        out = dict(keys, device=self.device.type)
        if keys.get("precision") == "fp16" and not self.cuda:
            return self._done(dict(out, status="n/a: fp16 autocast is for CUDA"), echo)
        left = budget.left()
        if left < args.min_left:
            return self._done(dict(out, status="skipped: budget"), echo)
        limit = min(left, limit if limit is not None else args.limit)
        deadline = time.monotonic() + limit
        margin = 1.0
        times: list[float] = []
        warm: list[float] = []
        step = None
        before = None
        status = "ok"
        try:
            with time_limit(limit):
                t = time.perf_counter()
                step = make_step()
                self.sync()
                out["setup_s"] = round(time.perf_counter() - t, 3)
                if memory and self.cuda:
                    torch.cuda.reset_peak_memory_stats(self.device)
                out["first_ms"] = self._call(step)
                last = out["first_ms"]
                for _ in range(args.warmup):
                    if time.monotonic() + 2 * last / 1e3 + margin > deadline:
                        break
                    last = self._call(step)
                    warm.append(last)
                if memory and self.cuda:  # the peak of the timed calls, without autotuning's workspaces
                    torch.cuda.reset_peak_memory_stats(self.device)
                    before = torch.cuda.memory_allocated(self.device)
                for i in range(max(args.repeats, 1)):
                    if i and time.monotonic() + last / 1e3 + margin > deadline:
                        break
                    last = self._call(step)
                    times.append(last)
        except Timeout as e:
            status = f"timeout: {e}" + ("" if "first_ms" in out else ", first call unfinished")
        except torch.cuda.OutOfMemoryError:
            status = "OOM"
        except Exception as e:  # noqa: BLE001 - one row lost, the run goes on
            status = f"error: {type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
        finally:
            step = None
            if before is not None and times:
                peak = torch.cuda.max_memory_allocated(self.device)
                out.update(
                    peak_gib=round(peak / 2**30, 3),
                    step_gib=round((peak - before) / 2**30, 3),
                    reserved_gib=round(torch.cuda.max_memory_reserved(self.device) / 2**30, 3),
                )
            if after is not None:
                with contextlib.suppress(Exception):
                    after()
            self.cleanup()
        samples = times or warm[-1:]  # no timed call fitted: the last warm-up call stands in
        if samples:
            out.update(
                median_ms=round(statistics.median(samples), 3),
                min_ms=round(min(samples), 3),
                n=len(times),
                times_ms=[round(t, 3) for t in times],
            )
            if "batch" in keys:
                out["images_per_s"] = round(keys["batch"] / (out["median_ms"] / 1e3), 1)
            if not times:
                out["note"] = "median of warm-up calls: no timed call fitted the limit"
        elif status == "ok":
            status = "partial: first call only"
        return self._done(dict(out, status=status), echo)

    def _call(self, step: Callable[[], object]) -> float:
        self.sync()
        t = time.perf_counter()
        step()
        self.sync()
        return (time.perf_counter() - t) * 1e3

    def _done(self, record: dict, echo: bool = True) -> dict:
        """Record, print the progress line (``echo``) and, for a failure, a line on stderr."""
        record = self.rec.write(record)
        if echo:
            say(f"{elapsed()} {describe(record)}")
        if failed(record):
            say(f"{elapsed()} {label(record)}: {record['status']}", err=True)
        return record


def failed(r: dict) -> bool:
    return r.get("status", "ok").startswith(("error", "OOM", "timeout", "partial"))


def label(r: dict) -> str:
    model = {"spikeyolo": "SpikeYOLO-", "yolov8": "YOLOv8"}.get(r.get("model"), r.get("model", "")) + r.get("scale", "")
    what = {"train": "train step", "infer": "fused inference"}.get(r.get("measure"), r.get("measure", "?"))
    variant = r.get("variant", "")
    parts = [
        model,
        f"[{variant}]" if variant and variant != "baseline" else "",
        what,
        f"batch {r['batch']}" if "batch" in r else "",
        r.get("precision", ""),
    ]
    return " ".join(p for p in parts if p)


def describe(r: dict) -> str:
    text = label(r) + ": "
    if "median_ms" in r:
        text += f"{r['median_ms']:.1f} ms (median of {r['n']}, min {r['min_ms']:.1f})"
        if r.get("images_per_s") and r.get("measure") == "infer":
            text += f", {r['images_per_s']:.0f} img/s"
        if "first_ms" in r:
            text += f", first call {r['first_ms'] / 1e3:.2f} s"
        if "peak_gib" in r:
            text += f", peak {r['peak_gib']:.2f} GiB (step {r['step_gib']:.2f}, reserved {r['reserved_gib']:.2f})"
        if r["status"] != "ok":
            text += f" [{r['status']}]"
    else:
        text += r["status"]
    return text


# --- steps ------------------------------------------------------------------------------------------


def train_step(model: torch.nn.Module, data: dict, precision: str, device_type: str, forward=None):
    """Forward + loss + backward, no optimiser (bench/speed.py's step, on any device); ``forward``: a compiled model."""

    def step():
        model.zero_grad(set_to_none=True)
        with autocast_for(precision, device_type):
            loss, _ = model.loss(data) if forward is None else model.loss(data, forward(data["img"]))
        loss.sum().backward()

    return step


def infer_step(fused: torch.nn.Module, x: torch.Tensor, precision: str, device_type: str):
    """One fused inference as ultralytics' val/predict run it (no grad)."""

    def step():
        with torch.inference_mode(), autocast_for(precision, device_type):
            fused(x)

    return step


def graphed_infer_step(fused: torch.nn.Module, x: torch.Tensor, precision: str):
    """The same inference captured once in a CUDA graph, then replayed (static input ``x``)."""
    dtype = AUTOCAST_DTYPES[precision]

    def autocast():  # the autocast weight cache must stay off inside a capture
        return torch.autocast("cuda", dtype=dtype, cache_enabled=False) if dtype else contextlib.nullcontext()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad(), autocast():
        for _ in range(3):  # cuDNN autotuning and lazy state outside the capture
            fused(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), autocast(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
        fused(x)
    return graph.replay


def fused_copy(model: torch.nn.Module) -> torch.nn.Module:
    """What ultralytics' AutoBackend runs: an eval-mode copy, fused (bench/speed.py does the same)."""
    return deepcopy(model).eval().fuse(verbose=False)


# --- environment ------------------------------------------------------------------------------------


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(args: argparse.Namespace, device: torch.device) -> dict:
    import ultralytics

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "ultralytics": ultralytics.__version__,
        "spikingjelly": version("spikingjelly"),
        "device": str(device),
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "layout": {
            f"{kind} {op}": str(layout.memory_format(kind, op)).removeprefix("torch.")
            for kind in ("cpu", "cuda")
            for op in layout.OPERATIONS
        },
        "threads": torch.get_num_threads(),
        "argv": sys.argv[1:],
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(
            gpu=p.name,
            capability=f"{p.major}.{p.minor}",
            sms=p.multi_processor_count,
            gpu_memory_gib=round(p.total_memory / 2**30, 1),
        )
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def check_device(name: str) -> torch.device:
    """The device, or a one-line error and exit code 2."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        fail(f"unknown device {name!r} (use cpu or cuda[:N])")
    if device.type not in ("cpu", "cuda"):
        fail(f"unsupported device {name!r} (use cpu or cuda[:N])")
    if device.type == "cuda":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            available, count = torch.cuda.is_available(), torch.cuda.device_count()
        if not available:
            fail(
                f"--device {name}: CUDA is not available here (torch {torch.__version__}, CUDA build "
                f"{torch.version.cuda}); use --device cpu"
            )
        if device.index is not None and device.index >= count:
            fail(f"--device {name}: only {count} CUDA device(s)")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def terminated(signum, frame) -> None:
    """SIGTERM (a run killed at its time limit): unwind, so that the summary is still printed."""
    raise SystemExit(143)


def fail(message: str) -> None:
    say(f"gpu.py: error: {message}", err=True)
    raise SystemExit(2)


# --- main table -------------------------------------------------------------------------------------


def main_measures(args: argparse.Namespace) -> list[tuple[str, int, str]]:
    train = [("train", args.batch, p) for p in args.precisions]
    infer = [("infer", b, p) for b in args.infer_batches for p in args.precisions if p != "bf16" or args.infer_bf16]
    return train + infer


def main_table(bench: Bench, budget: Budget, scale: str) -> None:
    args, device = bench.args, bench.device
    data = {k: v.to(device) for k, v in training_batch(args.batch, args.imgsz).items()}
    measures = main_measures(args)
    for kind in (k for k in ("yolov8", "spikeyolo") if k in args.models):
        base = dict(section="main", model=kind, scale=scale, imgsz=args.imgsz, variant="baseline")
        if budget.left() < args.min_left:
            for measure, batch, precision in measures:
                bench._done(dict(base, measure=measure, batch=batch, precision=precision, status="skipped: budget"))
            continue
        model = None
        fused = {}

        def get_fused() -> torch.nn.Module:  # built at the first inference measurement: a failure loses its rows only
            if "m" not in fused:
                fused["m"] = fused_copy(model)
            return fused["m"]

        try:
            t = time.perf_counter()
            model = build(kind, scale).to(device).train()
            bench.rec.write(dict(base, measure="build", status="ok", setup_s=round(time.perf_counter() - t, 3)))
            if kind == "spikeyolo":
                say("", main_header(scale, args))
            stuck = None  # a training step whose first call never finished: the other precisions would not either
            for measure, batch, precision in measures:
                keys = dict(base, measure=measure, batch=batch, precision=precision)
                if measure == "train" and stuck:
                    r = bench._done(
                        dict(keys, device=device.type, status=f"skipped: {stuck}"), echo=kind != "spikeyolo"
                    )
                elif measure == "train":
                    r = bench.measure(
                        keys,
                        lambda: train_step(model, data, precision, device.type),
                        budget,
                        memory=True,
                        after=lambda: model.zero_grad(set_to_none=True),
                        echo=kind != "spikeyolo",
                    )
                    if "first call unfinished" in r["status"]:
                        stuck = f"the {precision} first call did not finish"
                else:
                    x = torch.rand(batch, 3, args.imgsz, args.imgsz, device=device)
                    r = bench.measure(
                        keys,
                        lambda: infer_step(get_fused(), x, precision, device.type),
                        budget,
                        echo=kind != "spikeyolo",
                    )
                    del x
                if kind == "spikeyolo":
                    for row in main_rows(bench.rec, scale, args, only=r):
                        say(row)
        except Exception as e:  # noqa: BLE001 - building or fusing failed: this model's rows are lost, not the run
            bench._done(dict(base, measure="build", status=f"error: {type(e).__name__}: {e}"))
        finally:
            model = None
            fused.clear()
            bench.cleanup()


def main_header(scale: str, args: argparse.Namespace) -> str:
    return (
        f"| {scale}, {args.imgsz} px | SpikeYOLO | YOLOv8 | ratio | issue's H200: reference SpikeYOLO / YOLOv8 "
        "| target |\n|---|---|---|---|---|---|"
    )


def _cell(r: dict | None, field: str = "median_ms", fmt: str = "{:.1f}") -> str:
    if r is None:
        return "–"
    if field in r and r[field] is not None:
        text = fmt.format(r[field])
        return text if r["status"] == "ok" else f"{text} ({short(r['status'])})"
    return "n/a" if r["status"] == "ok" else short(r["status"])


def short(status: str) -> str:
    return status if len(status) <= 40 else status[:37] + "..."


def main_rows(rec: Recorder, scale: str, args: argparse.Namespace, only: dict | None = None) -> list[str]:
    """Markdown rows of the main table (``only``: the rows of that one SpikeYOLO record)."""
    rows = []
    for measure, batch, precision in main_measures(args):
        spike = rec.find(
            section="main", model="spikeyolo", scale=scale, measure=measure, batch=batch, precision=precision
        )
        if only is not None and spike is not only:
            continue
        stock = rec.find(section="main", model="yolov8", scale=scale, measure=measure, batch=batch, precision=precision)
        issue = scale == "s" and args.imgsz == 640 and args.batch == 16
        for what, field in [("ms", "median_ms")] + (
            [("peak", "peak_gib")] if measure == "train" and rec_cuda(spike) else []
        ):
            key = ("peak" if what == "peak" else measure, batch, precision)
            name = (
                f"train step, batch {batch}, {precision} (ms)"
                if measure == "train"
                else f"inference, batch {batch}, {precision} (ms; img/s)"
            )
            if what == "peak":
                name = f"peak memory, train step batch {batch} {precision} (GiB allocated; reserved)"
            s_val, y_val = (r.get(field) if r else None for r in (spike, stock))
            ratio = f"{s_val / y_val:.2f}×" if s_val and y_val else "–"
            if what == "peak":
                cells = [
                    _cell(spike, field, "{:.2f}")
                    + (f"; {spike['reserved_gib']:.2f}" if spike and "reserved_gib" in spike else ""),
                    _cell(stock, field, "{:.2f}")
                    + (f"; {stock['reserved_gib']:.2f}" if stock and "reserved_gib" in stock else ""),
                ]
            elif measure == "infer":
                cells = [
                    _cell(r) + (f"; {r['images_per_s']:.0f}" if r and "images_per_s" in r else "")
                    for r in (spike, stock)
                ]
            else:
                cells = [_cell(spike), _cell(stock)]
            ref = ISSUE_H200.get(key) if issue else None
            reference = f"{ref[0]:g} / {ref[1]:g}" if ref else "–"
            goal = TARGETS.get(key) if issue else None
            target = "–"
            if goal:
                value, unit = goal
                target = f"≤ {value:g}× YOLOv8" if unit == "x" else f"≤ {value:g} {unit}"
                got = (s_val / y_val if s_val and y_val else None) if unit == "x" else s_val
                if got is not None and got <= value:
                    target = f"**{target}**"
            rows.append(f"| {name} | {cells[0]} | {cells[1]} | {ratio} | {reference} | {target} |")
    return rows


def rec_cuda(r: dict | None) -> bool:
    return bool(r) and r.get("device") == "cuda"


def first_call_table(rec: Recorder, args: argparse.Namespace) -> list[str]:
    cols = [(scale, kind) for scale in args.scales for kind in ("spikeyolo", "yolov8")]
    head = (
        "| first call incl. cuDNN autotuning (s) | "
        + " | ".join(f"{'SpikeYOLO' if k == 'spikeyolo' else 'YOLOv8'} {s}" for s, k in cols)
        + " |"
    )
    rows = [head, "|---" * (len(cols) + 1) + "|"]
    for measure, batch, precision in main_measures(args):
        cells = []
        for scale, kind in cols:
            r = rec.find(section="main", model=kind, scale=scale, measure=measure, batch=batch, precision=precision)
            cells.append(f"{r['first_ms'] / 1e3:.2f}" if r and "first_ms" in r else (short(r["status"]) if r else "–"))
        rows.append(f"| {measure} batch {batch} {precision} | " + " | ".join(cells) + " |")
    return rows


# --- ablations --------------------------------------------------------------------------------------


def baseline_note(device: torch.device) -> str:
    """What the shipped CUDA path is made of, on ``device``."""

    def name(fmt: torch.memory_format) -> str:
        return "channels-last" if fmt is torch.channels_last else "channels-first"

    return (
        f"{name(layout.memory_format(device))}, depthwise 7×7 {name(layout.memory_format(device, 'depthwise training'))}"
        " in fp32 training, uint8 counts, cuDNN autotuning"
    )


def spikingjelly_neuron() -> contextlib.AbstractContextManager:
    """Every ILIF runs its time steps with spikingjelly's ``functional.ilif_multi_step``, which dispatches
    to spikingjelly's own CUDA or Triton kernels on a GPU (same counts and input gradients as ILIF:
    tests/nn/test_neuron.py compares ILIF with ``ILIFNode``, which calls it). Counts are still kept as bytes."""
    from spikingjelly.activation_based import functional, surrogate

    def multi_step(self: neuron.ILIF, inputs: tuple, states: tuple, **kwargs) -> tuple:
        x_seq, v = inputs[0], states[0]
        x_seq = x_seq if self.input_scale == 1.0 else x_seq * self.input_scale
        v = torch.zeros_like(x_seq[0], dtype=torch.float32) if isinstance(v, float) else v
        counts, v, _ = functional.ilif_multi_step(
            x_seq, v, 1 / (1 - self.decay), 1.0, surrogate.MultiLevelSpikeCount(self.max_count), True
        )
        return (mark_counts(counts, self.max_count),), (v if self.carry_state else 0.0,)

    return mock.patch.object(neuron.ILIF, "multi_step_functional_forward", multi_step)


ABLATION_MEASURES = (("train", "fp32"), ("train", "fp16"), ("infer", "fp32"), ("infer", "fp16"))
ABLATION_HEADER = (
    "| variant | train fp32 ms | train fp16 ms | peak fp32 GiB | inference fp32 ms | inference fp16 ms "
    "| first calls (s) | note |\n|---|---|---|---|---|---|---|---|"
)


class Ablations:
    """Variants of SpikeYOLO's CUDA path at one scale: train step (``--batch``) and fused inference (largest batch).

    Each variant runs its measurements inside its context (a patch, a layout) under its own time
    limit (``--variant-limit``) and the ablation budget, and prints one markdown row when done.
    """

    def __init__(self, bench: Bench, budget: Budget, scale: str):
        args, device = bench.args, bench.device
        self.bench, self.budget, self.scale, self.device = bench, budget, scale, device
        self.batch, self.big = args.batch, max(args.infer_batches)
        self.data = {k: v.to(device) for k, v in training_batch(args.batch, args.imgsz).items()}
        self.x = torch.rand(self.big, 3, args.imgsz, args.imgsz, device=device)
        self.model = build("spikeyolo", scale).to(device).train()
        self._fused = None

    def fused(self) -> torch.nn.Module:
        if self._fused is None:
            self._fused = fused_copy(self.model)
        return self._fused

    def eager(self, measure: str, precision: str) -> Callable[[], Callable[[], object]]:
        """The baseline steps of this model (what a variant's context changes underneath)."""
        if measure == "train":
            return lambda: train_step(self.model, self.data, precision, self.device.type)
        return lambda: infer_step(self.fused(), self.x, precision, self.device.type)

    def variant(
        self, name: str, measures, make=None, context=contextlib.nullcontext, note: str = "", last: bool = False
    ) -> None:
        """``last``: the variant may use all the budget left, one measurement included (compiling takes long)."""
        bench, args = self.bench, self.bench.args
        make = make or self.eager
        limit = Budget(max(self.budget.left(), 0) if last else min(args.variant_limit, max(self.budget.left(), 0)))
        results = {}
        try:
            with context():
                for measure, precision in measures:
                    keys = dict(
                        section="ablation",
                        variant=name,
                        model="spikeyolo",
                        scale=self.scale,
                        imgsz=args.imgsz,
                        measure=measure,
                        batch=self.batch if measure == "train" else self.big,
                        precision=precision,
                    )
                    if limit.left() < args.min_left and self.budget.left() >= args.min_left:
                        results[measure, precision] = bench._done(dict(keys, status="skipped: variant limit"))
                        continue
                    results[measure, precision] = bench.measure(
                        keys,
                        make(measure, precision),
                        self.budget,
                        limit=limit.left() if last else min(args.limit, limit.left()),
                        memory=measure == "train",
                        after=lambda: self.model.zero_grad(set_to_none=True),
                    )
        except Exception as e:  # noqa: BLE001 - the variant's context failed: its row is lost, not the run
            bench._done(
                dict(
                    section="ablation",
                    variant=name,
                    model="spikeyolo",
                    scale=self.scale,
                    measure="variant",
                    status=f"error: {type(e).__name__}: {str(e)[:300]}",
                )
            )
        self.row(name, results, note)

    def row(self, name: str, results: dict, note: str = "") -> None:
        cells = [
            _cell(results.get(("train", "fp32"))),
            _cell(results.get(("train", "fp16"))),
            _cell(results.get(("train", "fp32")), "peak_gib", "{:.2f}"),
            _cell(results.get(("infer", "fp32"))),
            _cell(results.get(("infer", "fp16"))),
        ]
        firsts = ", ".join(f"{m} {p} {r['first_ms'] / 1e3:.1f}" for (m, p), r in results.items() if "first_ms" in r)
        line = f"| {name} | " + " | ".join(cells) + f" | {firsts or '–'} | {note} |"
        self.bench.rec.ablation_rows.append(line)
        say(line)

    def child_variant(self, name: str, flags: list[str], note: str) -> None:
        """Train fp32 and inference fp32 under process-wide settings ``flags``: in a child process (this script again).

        Not in this process: cuDNN plans, autotuned or not, stay cached per convolution shape for the
        process's life, so switching ``cudnn.benchmark`` off here would rerun the autotuned plans.
        """
        args = self.bench.args
        left = min(args.variant_limit, self.budget.left())
        results = {}
        if left < 30:
            note = "skipped: budget"
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "child.jsonl"
                command = [
                    sys.executable,
                    "-u",
                    str(Path(__file__).resolve()),
                    "--device",
                    str(self.device),
                    *flags,
                    "--models",
                    "spikeyolo",
                    "--scales",
                    self.scale,
                    "--batch",
                    str(args.batch),
                    "--imgsz",
                    str(args.imgsz),
                    "--precisions",
                    "fp32",
                    "--infer-batches",
                    str(self.big),
                    "--repeats",
                    str(args.repeats),
                    "--warmup",
                    str(args.warmup),
                    "--no-ablations",
                    "--budget",
                    f"{left - 15:.0f}",
                    "--limit",
                    str(args.limit),
                    "--json",
                    str(path),
                ]
                try:
                    child = subprocess.run(
                        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=left, check=False
                    )
                    if child.returncode:
                        note = (
                            f"child exited {child.returncode}: " + (child.stderr.strip().splitlines() or [""])[-1][:200]
                        )
                except subprocess.TimeoutExpired:
                    note = f"child killed after {left:.0f} s"
                records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
            for r in records:
                if r.get("section") == "main" and r.get("measure") in ("train", "infer"):
                    fields = {k: v for k, v in r.items() if k not in ("t_s", "section", "variant")}
                    results[r["measure"], r["precision"]] = self.bench._done(
                        dict(fields, section="ablation", variant=name)
                    )
        self.row(name, results, note)

    def run(self) -> None:
        bench, args, device = self.bench, self.bench.args, self.device
        measures = [m for m in ABLATION_MEASURES if m[1] in args.precisions]  # no fp16 on a CPU
        say(
            "",
            f"## Ablations: SpikeYOLO-{self.scale}, {args.imgsz} px, training step batch {self.batch}, "
            f"fused inference batch {self.big}",
            "",
        )
        if bench.cuda and args.profile:
            profile_step(bench, self.budget, self.model, self.data)
        say("", ABLATION_HEADER)
        self.bench.rec.ablation_rows.append(ABLATION_HEADER)
        baseline = {}
        for measure, precision in measures:
            batch = self.batch if measure == "train" else self.big
            r = bench.rec.find(
                section="main",
                model="spikeyolo",
                scale=self.scale,
                imgsz=args.imgsz,
                measure=measure,
                batch=batch,
                precision=precision,
            )
            if r is not None and "median_ms" in r:
                baseline[measure, precision] = r
        if baseline:
            self.row("baseline (main table)", baseline, baseline_note(device))
        missing = [m for m in measures if m not in baseline]
        if missing:
            self.variant("baseline", missing, note=baseline_note(device))

        self.variant(
            "depthwise 7×7 channels-last in fp32 training",
            [m for m in measures if m == ("train", "fp32")],
            context=lambda: layout.using_memory_format(device, torch.channels_last, "depthwise training"),
            note="SepConv's depthwise convolutions without their channels-first copies",
        )
        self.variant(
            "counts kept as fp32 (uint8 off)",
            [m for m in measures if m[0] == "train"],
            context=counts_saved_as_float,
            note="fp16: autocast saves its own fp16 copies, never bytes",
        )
        if bench.cuda:
            self.child_variant(
                "cuDNN autotuning off (child process)",
                ["--no-cudnn-benchmark"],
                "heuristic cuDNN plans; first calls without autotuning",
            )
            self.child_variant(
                "ultralytics' training settings: deterministic, no autotuning (child process)",
                ["--no-cudnn-benchmark", "--deterministic"],
                "what `spikeyolo train` runs by default (deterministic=True)",
            )
            self.child_variant(
                "deterministic with autotuning (child process)",
                ["--deterministic"],
                "autotuning among cuDNN's deterministic plans",
            )

        first = {}  # the channels-first model and its fused copy, built inside the variant's context

        @contextlib.contextmanager
        def channels_first() -> Iterator[None]:
            with layout.using_memory_format(device, torch.contiguous_format):
                first["model"] = build("spikeyolo", self.scale).to(device).train()  # weights laid out channels-first
                try:
                    yield
                finally:
                    first.clear()

        def channels_first_step(measure: str, precision: str):
            def make():
                if measure == "train":
                    return train_step(first["model"], self.data, precision, device.type)
                if "fused" not in first:
                    first["fused"] = fused_copy(first["model"])
                return infer_step(first["fused"], self.x, precision, device.type)

            return make

        self.variant(
            "channels-first layout",
            measures,
            channels_first_step,
            channels_first,
            "spikeyolo.nn.layout: activations and weights",
        )
        bench.cleanup()

        def neuron_compiled():
            return mock.patch.object(neuron, "quantize_count", torch.compile(neuron.quantize_count, dynamic=True))

        self.variant(
            "neuron compiled (clamp+round+mask)",
            [m for m in measures if m != ("infer", "fp16")],
            context=neuron_compiled,
            note="first calls include compiling",
        )
        self.variant(
            "neuron from spikingjelly (ilif_multi_step)",
            [m for m in measures if m != ("infer", "fp16")],
            context=spikingjelly_neuron,
            note="spikingjelly's I-LIF kernels (CUDA/Triton on a GPU); same counts and gradients",
        )

        compiled = {}

        def model_compiled(measure: str, precision: str):
            def make():
                if measure == "train":
                    forward = compiled.setdefault("train", torch.compile(self.model))
                    return train_step(self.model, self.data, precision, device.type, forward=forward)
                return infer_step(
                    compiled.setdefault("infer", torch.compile(self.fused())), self.x, precision, device.type
                )

            return make

        # CUDA graphs late: a failed capture could leave the CUDA context unusable for what follows
        if bench.cuda:
            graphs(bench, self.budget, self.scale, self.fused, args.imgsz)
            say("", ABLATION_HEADER)
            bench.rec.ablation_rows.append(ABLATION_HEADER)
        if args.compile_model:
            self.variant(
                "model compiled (torch.compile)",
                sorted(measures, key=lambda m: m[1] != "fp32"),
                model_compiled,
                note="first calls = compile time",
                last=True,
            )
        compiled.clear()
        with contextlib.suppress(Exception):
            torch._dynamo.reset()


def graphs(bench: Bench, budget: Budget, scale: str, spike_fused: Callable[[], torch.nn.Module], imgsz: int) -> None:
    """Batch-1 fused inference, eager against one CUDA graph replay, for SpikeYOLO and YOLOv8 (own table)."""
    device = bench.device
    x = torch.rand(1, 3, imgsz, imgsz, device=device)
    rows = [
        "| batch-1 fused inference (ms) | eager fp32 | CUDA graph fp32 | eager fp16 | CUDA graph fp16 |",
        "|---|---|---|---|---|",
    ]
    say("", *rows)
    for kind in ("spikeyolo", "yolov8"):
        net = None
        cells = []
        try:
            net = spike_fused() if kind == "spikeyolo" else fused_copy(build("yolov8", scale).to(device))
            for precision in ("fp32", "fp16"):
                for mode in ("eager", "graph"):
                    where = dict(model=kind, scale=scale, imgsz=imgsz, measure="infer", batch=1, precision=precision)
                    keys = dict(section="ablation", variant=f"{mode} batch 1", **where)
                    main = bench.rec.find(section="main", **where)
                    if mode == "eager" and main is not None and "median_ms" in main:
                        r = main
                    elif mode == "eager":
                        r = bench.measure(keys, lambda: infer_step(net, x, precision, device.type), budget)
                    else:
                        r = bench.measure(keys, lambda: graphed_infer_step(net, x, precision), budget)
                    cells.append(_cell(r, "median_ms", "{:.2f}"))
        except Exception as e:  # noqa: BLE001 - building or fusing failed
            bench._done(
                dict(
                    section="ablation",
                    variant="graphs",
                    model=kind,
                    scale=scale,
                    measure="build",
                    status=f"error: {type(e).__name__}: {str(e)[:300]}",
                )
            )
        finally:
            net = None
            bench.cleanup()
        cells += ["–"] * (4 - len(cells))
        rows.append(f"| {'SpikeYOLO-' if kind == 'spikeyolo' else 'YOLOv8'}{scale} | " + " | ".join(cells) + " |")
        say(rows[-1])
    bench.rec.ablation_rows.extend(rows + [""])


def profile_step(bench: Bench, budget: Budget, model: torch.nn.Module, data: dict) -> None:
    """The kernels of one fp32 training step, top 15 by GPU time (printed after the ablation header)."""
    if budget.left() < bench.args.min_left:
        return
    from torch.profiler import ProfilerActivity, profile

    step = train_step(model, data, "fp32", "cuda")
    try:
        with time_limit(min(60, budget.left())):
            step()
            bench.sync()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                step()
                bench.sync()
            averages = prof.key_averages()
            try:
                table = averages.table(sort_by="self_device_time_total", row_limit=15, max_name_column_width=70)
            except (AttributeError, KeyError):
                table = averages.table(sort_by="self_cuda_time_total", row_limit=15, max_name_column_width=70)
        bench.rec.write(
            dict(
                section="ablation",
                variant="profile",
                model="spikeyolo",
                measure="profile",
                precision="fp32",
                status="ok",
                table=table,
            )
        )
        say("", "Profile of one SpikeYOLO fp32 training step (top 15 by self GPU time):", "```", table, "```")
    except (Timeout, Exception) as e:  # noqa: BLE001
        bench._done(
            dict(
                section="ablation",
                variant="profile",
                model="spikeyolo",
                measure="profile",
                status=f"error: {type(e).__name__}: {e}",
            )
        )
    finally:
        model.zero_grad(set_to_none=True)
        bench.cleanup()


# --- entry point ------------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--scales", nargs="+", default=["s", "n"], choices=["n", "s", "m", "l"])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["spikeyolo", "yolov8"],
        choices=["spikeyolo", "yolov8"],
        help="models of the main table (default both)",
    )
    parser.add_argument("--batch", type=int, default=16, help="training batch (default 16)")
    parser.add_argument("--imgsz", type=int, default=640, help="image size, a multiple of 32 (default 640)")
    parser.add_argument("--infer-batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--infer-bf16", action="store_true", help="also time inference under bf16 autocast")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (median; default 10)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="calls after the first before timing (default 2; CPU 1)"
    )
    parser.add_argument("--budget", type=float, default=290, help="seconds for the main table (default 290)")
    parser.add_argument(
        "--ablations",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the ablations (default: on for CUDA)",
    )
    parser.add_argument("--ablation-budget", type=float, default=240, help="seconds for the ablations (default 240)")
    parser.add_argument(
        "--ablation-scale", default=None, help="scale of the ablations (default s if measured, else the first)"
    )
    parser.add_argument("--limit", type=float, default=90, help="seconds one measurement may take (default 90)")
    parser.add_argument(
        "--variant-limit", type=float, default=100, help="seconds one ablation variant may take (default 100)"
    )
    parser.add_argument(
        "--min-left", type=float, default=5, help="skip a measurement with less budget left (default 5 s)"
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torch.backends.cudnn.benchmark (default on)",
    )
    parser.add_argument(
        "--compile-model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end the ablations with the whole model compiled, on the budget left (default on)",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="ultralytics' deterministic=True, its training default: deterministic algorithms and cuDNN plans",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="profile one SpikeYOLO training step in the ablations (CUDA; default on)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="append every result as one JSON line to this file")
    parser.add_argument("--quiet-progress", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.imgsz % 32:
        parser.error(f"--imgsz must be a multiple of 32, got {args.imgsz}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    device = check_device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup is None:
        args.warmup = 2 if cuda else 1
    if args.ablations is None:
        args.ablations = cuda
    if not cuda and "fp16" in args.precisions:
        args.precisions.remove("fp16")  # fp16 autocast is for CUDA (spikeyolo.nn.precision)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.deterministic:
        init_seeds(0, deterministic=True)  # as ultralytics' trainer does before building its model
    signal.signal(signal.SIGTERM, terminated)
    recorder = Recorder(args.json)
    bench = Bench(args, device, recorder)
    env = recorder.write(dict(section="env", status="ok", **environment(args, device)))
    say(
        "# SpikeYOLO GPU benchmark",
        "",
        ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("section", "status", "t_s")),
        "",
        f"Training step: batch {args.batch}, {args.imgsz} px, forward + loss + backward; inference: fused, batch "
        f"{' and '.join(map(str, args.infer_batches))}; median of {args.repeats} after {args.warmup} warm-up call(s); "
        f"budget {args.budget:.0f} s (main)"
        + (f" + {args.ablation_budget:.0f} s (ablations)" if args.ablations else ""),
        "",
    )
    try:
        budget = Budget(args.budget)
        for scale in args.scales:
            main_table(bench, budget, scale)
        if args.ablations:
            scale = args.ablation_scale or ("s" if "s" in args.scales else args.scales[0])
            budget = Budget(args.ablation_budget)
            try:
                Ablations(bench, budget, scale).run()
            except Exception as e:  # noqa: BLE001 - e.g. building the model: the summary still comes
                bench._done(
                    dict(
                        section="ablation",
                        variant="setup",
                        model="spikeyolo",
                        scale=scale,
                        measure="build",
                        status=f"error: {type(e).__name__}: {str(e)[:300]}",
                    )
                )
    finally:
        summary(recorder, args)


def summary(rec: Recorder, args: argparse.Namespace) -> None:
    lines = ["", f"# Summary ({time.monotonic() - START:.0f} s)"]
    for scale in args.scales:
        lines += ["", main_header(scale, args), *main_rows(rec, scale, args)]
    lines += ["", *first_call_table(rec, args)]
    if rec.ablation_rows:
        lines += ["", *rec.ablation_rows]
    problems = [r for r in rec.results if failed(r) or r.get("status", "").startswith("skipped")]
    if problems:
        lines += ["", "Not measured or incomplete:"] + [f"- {label(r)}: {r['status']}" for r in problems]
    say(*lines)


if __name__ == "__main__":
    main()
