"""Speed and memory of SpikeYOLO against stock YOLOv8 of the same scale, measured in one run.

    python bench/speed.py [--repeats 5] [--threads 2] [--scales n s]

Prints, per scale:
- evaluation (batch 1, fused, no grad) at 320 and 640 px and a training step (batch 2, 320 px:
  forward + loss + backward), in fp32 and under bfloat16 autocast: median ms, the ratio
  SpikeYOLO / YOLOv8 at the same precision (median of per-round ratios: both models are timed in
  turn each round) and SpikeYOLO / YOLOv8 fp32 (ratio of medians), the target for the latter
  (fp32: 1.5x / 1.3x faster than the reference implementation, bf16: 2x its fp32 speed), and
  achieved GFLOP/s (executed MACs × 2 / time, in % of the dense-convolution ceiling);
- the machine's ceiling in the same run: a dense 3×3 convolution (256 → 256 channels, 80 × 80,
  channels-last) and a 2048² matrix product, in GFLOP/s;
- memory of a training step at batch 8, 320 px: the peak resident memory the step adds (Linux),
  for SpikeYOLO (1-byte neuron mask, spike counts kept as bytes for backward), the same model with
  a neuron that saves its float input and/or with counts kept as fp32 (both: as the reference
  does), and YOLOv8.
Compare ratios, not absolute times across machines or runs.

Each precision is timed on its own: oneDNN caches 1024 compiled kernels, and four training steps
in turn (two models × two precisions) need more, so every round recompiled them all; that slowed
YOLOv8n's fp32 step 1.8× and SpikeYOLO-n's 1.4× and flattered the training ratios (3.9× instead
of 6×) in this script's earlier version.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import statistics
import sys
from unittest import mock
from copy import deepcopy
from pathlib import Path
from types import SimpleNamespace

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
from torch.nn import functional as F
from ultralytics.nn.tasks import DetectionModel

from spikeyolo.analysis.synops import conv_macs
from spikeyolo.nn import SpikeDetectionModel, neuron
from spikeyolo.nn import model as model_module
from spikeyolo.nn.precision import autocast_for
from timing import bench_arguments, interleaved_ms

# Ratios SpikeYOLO / YOLOv8 fp32 the issue asks for. fp32: 1.5x (eval) / 1.3x (train) faster than
# the reference implementation (n eval 320 5.8x, s eval 640 4.6x, train n 8.4x, s 4.5x); bf16: twice
# the reference's fp32 speed.
TARGETS = {("eval 320", "n", "fp32"): 3.9, ("eval 640", "s", "fp32"): 3.1, ("train", "n", "fp32"): 6.4,
           ("train", "s", "fp32"): 3.4, ("eval 320", "n", "bf16"): 2.9, ("eval 640", "s", "bf16"): 2.3,
           ("train", "n", "bf16"): 4.2, ("train", "s", "bf16"): 2.25}


def build(kind: str, scale: str) -> torch.nn.Module:
    """A freshly initialised detector (80 classes): ``kind`` is ``spikeyolo`` or ``yolov8``."""
    if kind == "spikeyolo":
        model = SpikeDetectionModel(f"snn_yolov8{scale}.yaml", verbose=False)
    else:
        model = DetectionModel(f"yolov8{scale}.yaml", verbose=False)
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    return model


def training_batch(batch: int, imgsz: int) -> dict[str, torch.Tensor]:
    """Random images with two boxes each, in ultralytics' batch format."""
    g = torch.Generator().manual_seed(0)
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(batch).repeat_interleave(2).float(),
        "cls": torch.randint(0, 80, (2 * batch, 1), generator=g).float(),
        "bboxes": torch.rand(2 * batch, 4, generator=g) * 0.4 + 0.3,
    }


def eval_step(fused: torch.nn.Module, imgsz: int, precision: str):
    """One batch-1 inference of a fused model, as ultralytics' val/predict run it."""
    x = torch.rand(1, 3, imgsz, imgsz)

    def step():
        with torch.inference_mode(), autocast_for(precision, "cpu"):
            fused(x)

    return step


def train_step(model: torch.nn.Module, data: dict, precision: str):
    """Forward + loss + backward (no optimiser step)."""

    def step():
        model.zero_grad(set_to_none=True)
        with autocast_for(precision, "cpu"):
            loss, _ = model.loss(data)
        loss.sum().backward()

    return step


def executed_macs(model: torch.nn.Module, imgsz: int) -> int:
    """Multiply-accumulates of every convolution one batch-1 forward executes (factorised convs as run)."""
    total = 0

    def count(conv: torch.nn.Conv2d, _inputs, out: torch.Tensor) -> None:
        nonlocal total
        total += out.shape[0] * conv_macs(conv, out.shape)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model(torch.rand(1, 3, imgsz, imgsz))
    for h in hooks:
        h.remove()
    return total


def ceiling_gflops(repeats: int) -> dict[str, float]:
    """The machine's dense fp32/bf16 throughput in this run: 3×3 convolution and matrix product."""
    x = torch.rand(1, 256, 80, 80).contiguous(memory_format=torch.channels_last)
    w = torch.rand(256, 256, 3, 3).contiguous(memory_format=torch.channels_last)
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    conv_flops, mm_flops = 2 * 256 * 256 * 9 * 80 * 80, 2 * 2048**3
    out = {}
    with torch.inference_mode():
        for precision in ("fp32", "bf16"):
            def conv():
                with autocast_for(precision, "cpu"):
                    F.conv2d(x, w, padding=1)

            def mm():
                with autocast_for(precision, "cpu"):
                    a @ b

            conv_ms, mm_ms = (statistics.median(t) for t in interleaved_ms([conv, mm], repeats))
            out[f"conv3x3 {precision}"] = conv_flops / conv_ms / 1e6
            out[f"matmul {precision}"] = mm_flops / mm_ms / 1e6
    return out


class _FloatSavingCount(torch.autograd.Function):
    """The reference neuron's backward bookkeeping: keeps the float input ``u`` (4 bytes per element)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, max_count: int) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.max_count = max_count
        return torch.clamp(u, 0, max_count).round()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad_output * ((u >= 0) & (u <= ctx.max_count)), None


# The variants the memory table compares against, as patches of the package for one block.
def float_saving_neuron():
    """Every I-LIF uses :class:`_FloatSavingCount` (same forward, same gradients)."""
    return mock.patch.object(neuron, "_IntegerCount", _FloatSavingCount)


def counts_saved_as_float():
    """Neuron outputs kept for backward as they are (fp32) instead of as bytes."""
    return mock.patch.object(model_module, "counts_saved_as_bytes", contextlib.nullcontext)


def _status_kib(field: str) -> int | None:
    status = Path("/proc/self/status")
    match = re.search(rf"^{field}:\s+(\d+) kB", status.read_text(), re.M) if status.exists() else None
    return int(match.group(1)) if match else None


def peak_step_mib(step) -> float | None:
    """Resident memory (MiB) one call of ``step`` adds at its peak; ``None`` off Linux.

    Resets the kernel's high-water mark (``/proc/self/clear_refs``) and reads ``VmHWM − VmRSS``.
    glibc's allocation threshold is pinned (``configure_allocator``) so freed tensors leave the
    resident set instead of being cached, which would hide the next step's peak.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    step()
    peak = _status_kib("VmHWM")
    return None if before is None or peak is None else (peak - before) / 1024


def configure_allocator() -> None:
    """Allocations of 64 KiB and more are mapped and unmapped directly (glibc ``M_MMAP_THRESHOLD``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)


def target(measure: str, scale: str, precision: str) -> str:
    value = TARGETS.get((measure, scale, precision))
    return f"≤{value:g}x" if value else "-"


def speed_rows(scale: str, repeats: int, peak: dict[str, float]) -> None:
    models = {kind: build(kind, scale) for kind in ("spikeyolo", "yolov8")}
    fused = {kind: deepcopy(m).eval().fuse(verbose=False) for kind, m in models.items()}
    data = training_batch(2, 320)
    kinds, precisions = ("spikeyolo", "yolov8"), ("fp32", "bf16")
    for measure in ("eval 320", "eval 640", "train"):
        imgsz = int(measure.split()[1]) if measure != "train" else 320
        times = {}
        for p in precisions:  # one precision at a time: see the module docstring (oneDNN's kernel cache)
            if measure == "train":
                steps = {(k, p): train_step(models[k].train(), data, p) for k in kinds}
            else:
                steps = {(k, p): eval_step(fused[k], imgsz, p) for k in kinds}
            times |= dict(zip(steps, interleaved_ms(list(steps.values()), repeats)))
        macs = {k: executed_macs(fused[k], imgsz) for k in kinds} if measure != "train" else None
        for precision in precisions:
            spike, stock = times["spikeyolo", precision], times["yolov8", precision]
            ratio = statistics.median(s / y for s, y in zip(spike, stock))
            spike_ms, stock_ms = statistics.median(spike), statistics.median(stock)
            to_fp32 = spike_ms / statistics.median(times["yolov8", "fp32"])
            flops = ""
            if macs:
                spike_gf, stock_gf = (2 * macs[k] / ms / 1e6 for k, ms in (("spikeyolo", spike_ms), ("yolov8", stock_ms)))
                flops = f"{spike_gf:>9.1f} ({spike_gf / peak[f'conv3x3 {precision}']:>4.0%}){stock_gf:>9.1f}"
            label = f"{scale} {measure}, batch 1" if measure != "train" else f"{scale} train step, batch 2, 320"
            print(f"{label + ', ' + precision:<38}{spike_ms:>10.1f}{stock_ms:>10.1f}{ratio:>7.2f}x{to_fp32:>9.2f}x"
                  f"{target(measure, scale, precision):>8}  {flops}")


def memory_rows(scale: str, batch: int = 8, imgsz: int = 320) -> None:
    data = training_batch(batch, imgsz)
    rows = [("SpikeYOLO", "spikeyolo", ()),
            ("  with a float-saving neuron", "spikeyolo", (float_saving_neuron,)),
            ("  with counts saved as fp32", "spikeyolo", (counts_saved_as_float,)),
            ("  with both (as the reference)", "spikeyolo", (float_saving_neuron, counts_saved_as_float)),
            ("YOLOv8", "yolov8", ())]
    measured = {}
    for label, kind, patches in rows:
        model = build(kind, scale).train()
        step = train_step(model, data, "fp32")
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch())
            step()  # warm-up: first-call allocations, lazily built loss
            measured[label] = peak_step_mib(step)
        print(f"{scale} {label:<36}" + (f"{measured[label]:>10.0f}" if measured[label] is not None else f"{'n/a':>10}"))
        del model, step
    ours = measured["SpikeYOLO"]
    for label in [r[0] for r in rows[1:4]]:
        if ours is not None and measured[label]:
            print(f"{scale} SpikeYOLO peak is {1 - ours / measured[label]:.0%} below '{label.strip()}'")


def main() -> None:
    args = bench_arguments(__doc__)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}, "
          f"{sys.platform}; bf16 = CPU autocast to bfloat16")
    peak = ceiling_gflops(args.repeats)
    print("machine ceiling, GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    header = (f"{'measurement':<38}{'SpikeYOLO':>10}{'YOLOv8':>10}{'ratio':>8}{'÷ fp32':>10}{'target':>8}"
              f"  {'SpikeYOLO GFLOP/s':>17}{'YOLOv8':>9}")
    print("\n" + header + "\n" + f"{'':<38}{'ms':>10}{'ms':>10}{'':>8}{'YOLOv8':>10}" + "\n" + "-" * len(header))
    for scale in args.scales:
        speed_rows(scale, args.repeats, peak)
    configure_allocator()  # only now: mapping every large tensor afresh would slow the timed runs
    print(f"\n{'training step, batch 8, 320 px, fp32':<38}{'peak MiB':>10}\n" + "-" * 48)
    for scale in args.scales:
        memory_rows(scale)


if __name__ == "__main__":
    main()
