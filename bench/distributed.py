"""Training step time on this machine: one process against a torchrun world of two (gloo on CPU).

Each run is the real ``spikeyolo train`` under ``torchrun --nproc_per_node N`` (N = 1 is an
ordinary single-process run: torchrun sets WORLD_SIZE 1) on a synthetic dataset, with the same
global batch for both (nbs = batch: every batch is an optimizer step). Rank 0 times each step
from ``on_train_batch_start`` to ``on_train_batch_end``: data, forward, backward with the
gradient all-reduce, optimizer step; the first two steps of a run are left out. Runs alternate
1, 2, 1, 2, ... so that drifts of the shared machine hit both alike.

ultralytics gives every CPU process ``cpu_count - 1`` threads (at most 8), so on a 2-core machine
one process computes on one core and two processes on both.

    python bench/distributed.py [--repeats 2] [--images 64] [--imgsz 128] [--batch 16] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker() -> None:
    """Under torchrun: ``spikeyolo train`` with rank 0 recording its step times to ``$BENCH_STEPS``."""
    from ultralytics.utils import RANK
    from ultralytics.utils.callbacks.base import default_callbacks

    steps: list[float] = []
    default_callbacks["on_train_batch_start"].append(lambda trainer: steps.append(-time.perf_counter()))
    default_callbacks["on_train_batch_end"].append(lambda trainer: steps.__setitem__(-1, steps[-1] + time.perf_counter()))
    if RANK in {-1, 0}:
        default_callbacks["on_train_end"].append(lambda trainer: Path(os.environ["BENCH_STEPS"]).write_text(json.dumps(steps)))
    sys.argv = ["spikeyolo", *sys.argv[2:]]
    runpy.run_module("spikeyolo", run_name="__main__", alter_sys=True)


def run(processes: int, data: Path, args: argparse.Namespace, work: Path) -> list[float]:
    """Step times (s) of one training run of ``processes`` processes, warm-up steps left out."""
    from ultralytics.utils.dist import find_free_network_port

    steps = work / f"steps{processes}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
           "--master_addr", "127.0.0.1", "--master_port", str(find_free_network_port()), __file__, "--worker",
           "train", "model=snn_yolov8n.yaml", f"data={data}", f"epochs={args.epochs}", f"imgsz={args.imgsz}",
           f"batch={args.batch}", f"nbs={args.batch}", "warmup_epochs=0", "val=False", "plots=False",
           f"project={work}", f"name=n{processes}", "exist_ok=True"]
    subprocess.run(cmd, check=True, cwd=work, env={**os.environ, "BENCH_STEPS": str(steps)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(steps.read_text())[2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    from spikeyolo.data import generate_dataset

    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        work = Path(tmp)
        os.environ["YOLO_CONFIG_DIR"] = str(work / "config")
        data = generate_dataset(work / "data", n_train=args.images, n_val=8, imgsz=args.imgsz, seed=0, progress=False)
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for processes in times:
                times[processes] += run(processes, data, args, work)
    print(f"SpikeYOLO-n, global batch {args.batch} at {args.imgsz} px, {os.cpu_count()} CPU cores, "
          f"{args.repeats} runs of {args.epochs} epochs each")
    one = statistics.median(times[1])
    for processes, steps in times.items():
        median = statistics.median(steps)
        print(f"  {processes} process(es): {median * 1e3:7.0f} ms a step (median of {len(steps)}; "
              f"{args.batch / median:5.1f} images/s; speed-up {one / median:.2f}x)")


if __name__ == "__main__":
    worker() if sys.argv[1:2] == ["--worker"] else main()
