"""The depthwise 7×7 convolutions of SpikeYOLO-s, alone: which memory layout trains them fastest on this device.

    python bench/gpu_depthwise.py [--device cuda] [--batch 16] [--imgsz 640] [--repeats 20]

``bench/gpu.py``'s profile of one SpikeYOLO-s training step on an H200 (batch 16, 640 px, fp32,
channels-last) spent 46 of 144 ms of GPU time in 12 calls of one cuDNN weight-gradient kernel
(``sm80_xmma_wgrad_implicit_gemm_indexed``), 3.8 ms each: SpikeYOLO-s has exactly 12 depthwise 7×7
convolutions (``SepConv.dwconv2``). This script times forward + backward (input and weight
gradients) of one such convolution at each of their four shapes (the model's own, found by a
forward hook), per precision (fp32, fp16 autocast) and layout:

- ``channels-last``: input and weight channels-last, as the model runs today;
- ``channels-first``: both contiguous;
- ``channels-first, converted``: a channels-last input copied to channels-first and the output
  copied back, i.e. what choosing channels-first for these convolutions alone would cost inside a
  channels-last model.

Prints one markdown table (median ms of ``--repeats`` after warm-up, cuDNN autotuning on) and the
sum over the model's 12 convolutions per layout.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
from torch.nn import functional as F

from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.precision import autocast_for

CL, CF = torch.channels_last, torch.contiguous_format


def depthwise_shapes(scale: str, imgsz: int) -> Counter:
    """``(C, H, W, k) → count`` of the model's depthwise convolutions with kernels larger than 3, per image."""
    model = SpikeDetectionModel(f"snn_yolov8{scale}.yaml", verbose=False)
    found: Counter = Counter()
    for conv in model.modules():
        if isinstance(conv, torch.nn.Conv2d) and conv.groups == conv.in_channels > 1 and conv.kernel_size[0] > 3:
            conv.register_forward_hook(lambda m, i, o: found.update([(*i[0].shape[1:], m.kernel_size[0])]))
    with torch.no_grad():
        model(torch.rand(1, 3, imgsz, imgsz))
    return found


def step(x: torch.Tensor, w: torch.Tensor, k: int, layout: str, precision: str):
    """One forward + backward of the depthwise convolution in ``layout``."""
    fmt = CL if layout == "channels-last" else CF

    def run() -> None:
        xi = x if layout != "channels-first, converted" else x.contiguous(memory_format=CF)
        with autocast_for(precision, x.device.type):
            y = F.conv2d(xi, w.contiguous(memory_format=fmt), None, 1, (k - 1) // 2, 1, w.shape[0])
        if layout == "channels-first, converted":
            y = y.contiguous(memory_format=CL)
        y.float().sum().backward()

    return run


def median_ms(fn, repeats: int, device: torch.device) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--scale", default="s")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    shapes = depthwise_shapes(args.scale, args.imgsz)
    layouts = ("channels-last", "channels-first", "channels-first, converted")
    precisions = ("fp32", "fp16") if device.type == "cuda" else ("fp32",)
    print(f"SpikeYOLO-{args.scale}, batch {args.batch}, {args.imgsz} px, {device}, torch {torch.__version__}; "
          f"median ms of forward + backward (input and weight gradients)\n")
    print("| C, H, W, k | count | precision | " + " | ".join(layouts) + " |")
    print("|---" * (3 + len(layouts)) + "|")
    totals = {(prec, lay): 0.0 for prec in precisions for lay in layouts}
    for (c, h, w, k), count in sorted(shapes.items()):
        x = torch.randn(args.batch, c, h, w, device=device).contiguous(memory_format=CL).requires_grad_()
        weight = torch.randn(c, 1, k, k, device=device).contiguous(memory_format=CL).requires_grad_()
        for prec in precisions:
            row = []
            for lay in layouts:
                ms = median_ms(step(x, weight, k, lay, prec), args.repeats, device)
                totals[prec, lay] += count * ms
                row.append(f"{ms:.2f}")
            print(f"| {c}, {h}, {w}, {k} | {count} | {prec} | " + " | ".join(row) + " |", flush=True)
    for prec in precisions:
        print(f"| all {sum(shapes.values())} | | {prec} | " + " | ".join(f"{totals[prec, lay]:.1f}" for lay in layouts) + " |")


if __name__ == "__main__":
    main()
