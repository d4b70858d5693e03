"""torch.compile (inductor) against eager PyTorch for SpikeYOLO, with stock YOLOv8 eager as the yardstick.

    python bench/compile.py [--repeats 5] [--threads 2] [--scales n] [--freezing]

Prints, per scale: the time inductor takes to build each graph (first call), then the median ms of
eager and compiled SpikeYOLO and of eager YOLOv8, timed in turn each round, for evaluation (fused,
batch 1, 320 px, no grad) and a training step (batch 2, 320 px; compiled forward, then loss and
backward as ultralytics' trainer runs them with ``compile=True``). ``--freezing`` sets inductor's
``freezing`` (weights as constants, pre-packed convolutions) for the evaluation graph.
"""

from __future__ import annotations

import statistics
import sys
import time
from copy import deepcopy

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
import torch._inductor.config

from speed import build, eval_step, train_step, training_batch
from timing import bench_arguments, interleaved_ms


def compiled_train_step(model: torch.nn.Module, data: dict):
    """Forward through the compiled module, loss and backward eagerly (ultralytics' compile=True path)."""
    compiled = torch.compile(model)

    def step():
        model.zero_grad(set_to_none=True)
        loss, _ = model.loss(data, compiled(data["img"]))
        loss.sum().backward()

    return step


def first_call_s(step) -> float:
    t = time.perf_counter()
    step()
    return time.perf_counter() - t


def rows(scale: str, repeats: int, freezing: bool) -> None:
    spike, stock = build("spikeyolo", scale), build("yolov8", scale)
    data = training_batch(2, 320)
    fused = deepcopy(spike).eval().fuse(verbose=False)
    torch._inductor.config.freezing = freezing
    measures = {
        "eval 320, batch 1": (eval_step(fused, 320, "fp32"), eval_step(torch.compile(fused), 320, "fp32"),
                              eval_step(deepcopy(stock).eval().fuse(verbose=False), 320, "fp32")),
        "train step, batch 2, 320": (train_step(spike.train(), data, "fp32"),
                                     compiled_train_step(deepcopy(spike).train(), data),
                                     train_step(stock.train(), data, "fp32")),
    }
    for measure, (eager, compiled, yolo) in measures.items():
        build_s = first_call_s(compiled)
        times = interleaved_ms([eager, compiled, yolo], repeats)
        e, c, y = (statistics.median(t) for t in times)
        gain = statistics.median(a / b for a, b in zip(times[0], times[1]))
        print(f"{scale} {measure:<26}{build_s:>10.0f}{e:>10.1f}{c:>10.1f}{y:>10.1f}{gain:>9.2f}x"
              f"{statistics.median(a / b for a, b in zip(times[1], times[2])):>9.2f}x")


def main() -> None:
    args = bench_arguments(__doc__, flags=("--freezing",))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}, {sys.platform}, "
          f"inductor freezing {'on' if args.freezing else 'off'}")
    header = f"{'measurement':<28}{'build s':>10}{'eager':>10}{'compiled':>10}{'YOLOv8':>10}{'speed-up':>10}{'÷ YOLOv8':>10}"
    print("\n" + header + "\n" + f"{'':<28}{'':>10}{'ms':>10}{'ms':>10}{'ms':>10}" + "\n" + "-" * len(header))
    for scale in args.scales:
        rows(scale, args.repeats, args.freezing)


if __name__ == "__main__":
    main()
