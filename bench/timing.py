"""Shared benchmark plumbing: command-line options and median wall-clock timing."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def bench_arguments(doc: str, sizes: bool = False) -> argparse.Namespace:
    """``--repeats``, ``--threads``, ``--scales`` (and ``--sizes``); sets torch's thread count."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scales", nargs="+", default=["n", "s"])
    if sizes:
        parser.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)
