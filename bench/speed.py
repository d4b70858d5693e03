"""Speed of SpikeYOLO against stock YOLOv8 of the same scale, measured in one run.

    python bench/speed.py [--repeats 5] [--threads 2] [--scales n s]

Prints median milliseconds per image for evaluation (batch 1, fp32, fused, no grad) at 320
and 640 pixels, median milliseconds per training step (batch 2, 320 px: forward + loss +
backward), and the ratio SpikeYOLO / YOLOv8. Compare ratios, not absolute times across machines
or runs.
"""

from __future__ import annotations

from copy import deepcopy
from types import SimpleNamespace

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
from ultralytics.nn.tasks import DetectionModel

from spikeyolo.nn import SpikeDetectionModel
from timing import bench_arguments, median_ms


def build(kind: str, scale: str) -> torch.nn.Module:
    """A freshly initialised detector (80 classes): ``kind`` is ``spikeyolo`` or ``yolov8``."""
    if kind == "spikeyolo":
        model = SpikeDetectionModel(f"snn_yolov8{scale}.yaml", verbose=False)
    else:
        model = DetectionModel(f"yolov8{scale}.yaml", verbose=False)
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    return model


def eval_ms(model: torch.nn.Module, imgsz: int, repeats: int) -> float:
    """Median ms for one image (batch 1), fused as ultralytics' val/predict run it (a fused copy)."""
    model = deepcopy(model).eval().fuse(verbose=False)
    x = torch.rand(1, 3, imgsz, imgsz)

    def step():
        with torch.inference_mode():
            model(x)

    return median_ms(step, repeats)


def train_step_ms(model: torch.nn.Module, imgsz: int, batch: int, repeats: int) -> float:
    """Median ms per step (forward + loss + backward) on a batch with two boxes per image."""
    model.train()
    g = torch.Generator().manual_seed(0)
    data = {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(batch).repeat_interleave(2).float(),
        "cls": torch.randint(0, 80, (2 * batch, 1), generator=g).float(),
        "bboxes": torch.rand(2 * batch, 4, generator=g) * 0.4 + 0.3,
    }

    def step():
        model.zero_grad(set_to_none=True)
        loss, _ = model.loss(data)
        loss.sum().backward()

    return median_ms(step, repeats)


def main() -> None:
    args = bench_arguments(__doc__)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, median of {args.repeats}")
    header = f"{'measurement':<32}{'SpikeYOLO ms':>14}{'YOLOv8 ms':>12}{'ratio':>8}"
    print(header + "\n" + "-" * len(header))
    for scale in args.scales:
        models = {kind: build(kind, scale) for kind in ("spikeyolo", "yolov8")}
        rows = [(f"{scale} eval 320, batch 1", lambda m: eval_ms(m, 320, args.repeats)),
                (f"{scale} eval 640, batch 1", lambda m: eval_ms(m, 640, args.repeats)),
                (f"{scale} train step, batch 2, 320", lambda m: train_step_ms(m, 320, 2, args.repeats))]
        for label, measure in rows:
            spike, stock = (measure(models[k]) for k in ("spikeyolo", "yolov8"))
            print(f"{label:<32}{spike:>14.1f}{stock:>12.1f}{spike / stock:>7.2f}x")


if __name__ == "__main__":
    main()
