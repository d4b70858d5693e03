"""Inference cost of SpikeYOLO's three execution modes, measured in one run.

    python bench/inference_modes.py [--repeats 5] [--threads 2] [--scales n s] [--sizes 320 640]

Prints median milliseconds per image (batch 1, fp32, eval, no grad) for: integer inference of
the unfused training graph, integer inference after re-parameterisation (``fuse()``), and
spike-driven inference (fused, every synapse run on D binary planes, input checks off). Freshly
initialised models with BatchNorm statistics that make every neuron fire.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch

from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.spike import spike_driven

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from firing_weights import perturb_batchnorms  # noqa: E402
from timing import bench_arguments, median_ms  # noqa: E402


def forward_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of one inference-mode forward."""

    def step():
        with torch.inference_mode():
            model(x)

    return median_ms(step, repeats)


def main() -> None:
    args = bench_arguments(__doc__, sizes=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, batch 1, median of {args.repeats}")
    header = f"{'model':<14}{'integer ms':>12}{'fused ms':>10}{'spike-driven ms':>17}{'fused speed-up':>16}"
    print(header + "\n" + "-" * len(header))
    for scale in args.scales:
        unfused = SpikeDetectionModel(f"snn_yolov8{scale}.yaml", verbose=False).eval()
        perturb_batchnorms(unfused)
        fused = copy.deepcopy(unfused).fuse(verbose=False)
        for size in args.sizes:
            x = torch.rand(1, 3, size, size)
            t_int, t_fused = forward_ms(unfused, x, args.repeats), forward_ms(fused, x, args.repeats)
            with spike_driven(fused, check=False):
                t_spike = forward_ms(fused, x, args.repeats)
            print(f"{scale} @ {size:<9}{t_int:>12.1f}{t_fused:>10.1f}{t_spike:>17.1f}{t_int / t_fused:>15.2f}x")


if __name__ == "__main__":
    main()
