"""Shared benchmark plumbing: command-line options and wall-clock timing."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch


def bench_arguments(doc: str, sizes: bool = False, flags: Sequence[str] = ()) -> argparse.Namespace:
    """``--repeats``, ``--threads``, ``--scales`` (and ``--sizes``, and on/off ``flags``); sets torch's thread count."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scales", nargs="+", default=["n", "s"])
    if sizes:
        parser.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    for flag in flags:
        parser.add_argument(flag, action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    return statistics.median(interleaved_ms([fn], repeats, warmup)[0])


def interleaved_ms(fns: Sequence[Callable[[], object]], repeats: int, warmup: int = 1) -> list[list[float]]:
    """Wall times (ms) of each function, run in turn within every round.

    Interleaving makes slow drifts of a shared machine (other tenants, clock changes) hit every
    function alike, so ratios taken per round are far steadier than ratios of separate medians.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1e3)
    return times
