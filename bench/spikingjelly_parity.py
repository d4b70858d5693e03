"""SpikeYOLO's own versions of spikingjelly 2.0 facilities against spikingjelly's: the figures behind each choice.

    python bench/spikingjelly_parity.py [--repeats 5] [--threads 2]

Prints, each against the spikingjelly counterpart:
- ILIF against ``neuron.ILIFNode`` on ``[4, 8, 64, 40, 40]`` (frames channels-last, as in the
  model): forward+backward and no-grad forward ms, memory autograd keeps for backward, whether
  the input gradient matches bit for bit, ONNX export, deep copy after a training forward;
- ``temporal.over_time`` against ``functional.seq_to_ann_forward`` in SpikeYOLO-n (fused, batch 1,
  320 px): convolutions that receive channels-first input, and the forward's ms;
- ``FiringRateMonitor`` against ``monitor.OutputMonitor`` reducing each output to ``(sum, numel)``:
  Python memory retained per SpikeYOLO-n forward (64 px);
- ``functional.reset_net`` against the model's own walk over ``model.modules()``: µs per
  forward (two resets each).
Timings are medians of interleaved rounds (see ``timing.py``); compare ratios, not absolute times.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import os
import statistics
import sys
import tracemalloc
from unittest import mock

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
from spikingjelly.activation_based import base, functional, monitor, neuron, surrogate

from spikeyolo.analysis import FiringRateMonitor
from spikeyolo.nn import blocks, conv, neck, sepconv, sppf
from spikeyolo.nn.neuron import ILIF
from speed import build, eval_step
from timing import bench_arguments, interleaved_ms


def _ratio(times: list[list[float]]) -> float:
    """Median per-round ratio second / first."""
    return statistics.median(b / a for a, b in zip(*times))


def _saved_mib(node: torch.nn.Module, x: torch.Tensor) -> float:
    """MiB of the distinct storages autograd keeps for the backward of ``node(x)``."""
    storages = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        node(x.detach().requires_grad_())
    functional.reset_net(node)
    return sum(storages.values()) / 2**20


@contextlib.contextmanager
def _quiet_stdout():
    """Silence file descriptor 1: the ONNX exporter prints the whole graph there (C++) when it fails."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _onnx_exports(node: torch.nn.Module) -> str:
    try:
        with torch.no_grad(), _quiet_stdout():
            torch.onnx.export(node.eval(), (torch.randn(2, 1, 3, 8, 8),), io.BytesIO(), dynamo=False, opset_version=17)
    except Exception as e:  # noqa: BLE001 - the failure is the measurement
        return f"fails ({type(e).__name__}: {str(e).split('.')[0]})"
    finally:
        node.train()
    return "exports"


def _deepcopy_after_training_forward(node: torch.nn.Module) -> str:
    node(torch.randn(2, 3, 4, requires_grad=True))
    try:
        copy.deepcopy(node)
    except RuntimeError as e:
        return f"fails ({str(e).split(' at ')[0]})"
    finally:
        functional.reset_net(node)
    return "copies"


def neuron_rows(repeats: int) -> None:
    shape = (4, 8, 64, 40, 40)
    frames = torch.randn(shape[0] * shape[1], *shape[2:], generator=torch.Generator().manual_seed(0)) * 2 + 1
    x = frames.contiguous(memory_format=torch.channels_last).view(shape)
    weights = torch.randn_like(x)
    ours = ILIF()  # the model's neurons run with carry_state=False
    ours.carry_state = False
    ref = neuron.ILIFNode(tau=4 / 3, surrogate_function=surrogate.MultiLevelSpikeCount(4), detach_reset=True,
                          step_mode="m")

    def train(node: torch.nn.Module):
        def step() -> torch.Tensor:
            xg = x.detach().requires_grad_()
            (node(xg) * weights).sum().backward()
            functional.reset_net(node)
            return xg.grad

        return step

    def infer(node: torch.nn.Module):
        def step() -> None:
            with torch.no_grad():
                node(x)
            functional.reset_net(node)

        return step

    same_grad = torch.equal(train(ours)(), train(ref)())
    fb, fwd = interleaved_ms([train(ours), train(ref)], repeats), interleaved_ms([infer(ours), infer(ref)], repeats)
    print(f"\nI-LIF on {list(shape)}{'ILIF':>22}{'ILIFNode':>12}{'ratio':>8}")
    for label, times in (("forward+backward, ms", fb), ("forward, no grad, ms", fwd)):
        print(f"{label}{statistics.median(times[0]):>30.1f}{statistics.median(times[1]):>12.1f}{_ratio(times):>7.2f}x")
    saved = _saved_mib(ours, x), _saved_mib(ref, x)
    print(f"kept for backward, MiB{saved[0]:>28.1f}{saved[1]:>12.1f}{saved[1] / saved[0]:>7.1f}x")
    print(f"input gradient bit-identical: {same_grad}")
    print(f"ONNX export: ILIF {_onnx_exports(ILIF())}; ILIFNode {_onnx_exports(copy.deepcopy(ref))}")
    print(f"deep copy after a training forward: ILIF (carry_state=False) {_deepcopy_after_training_forward(ours)}; "
          f"ILIFNode {_deepcopy_after_training_forward(ref)}")


@contextlib.contextmanager
def seq_to_ann_forward_everywhere():
    """Every block runs its per-frame layers through spikingjelly's ``seq_to_ann_forward``."""
    def seq_to_ann(layer, x: torch.Tensor) -> torch.Tensor:
        return functional.seq_to_ann_forward(x, layer)

    with contextlib.ExitStack() as stack:
        for module in (blocks, conv, neck, sepconv, sppf):
            stack.enter_context(mock.patch.object(module, "over_time", seq_to_ann))
        yield


def _channels_first_convs(model: torch.nn.Module, patch: bool) -> str:
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].is_contiguous()))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with seq_to_ann_forward_everywhere() if patch else contextlib.nullcontext(), torch.no_grad():
        model(torch.rand(1, 3, 320, 320))
    for h in hooks:
        h.remove()
    return f"{sum(seen)} of {len(seen)}"


def over_time_rows(repeats: int) -> None:
    fused = build("spikeyolo", "n").eval().fuse(verbose=False)
    step = eval_step(fused, 320, "fp32")

    def patched() -> None:
        with seq_to_ann_forward_everywhere():
            step()

    times = interleaved_ms([step, patched], repeats)
    print(f"\nSpikeYOLO-n, fused, batch 1, 320 px{'over_time':>15}{'seq_to_ann':>12}{'ratio':>8}")
    print(f"convolutions with channels-first input{_channels_first_convs(fused, False):>12}"
          f"{_channels_first_convs(fused, True):>12}")
    print(f"forward, ms{statistics.median(times[0]):>39.1f}{statistics.median(times[1]):>12.1f}{_ratio(times):>7.2f}x")


def _retained_bytes_per_forward(model: torch.nn.Module, forwards: int = 50) -> float:
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        model(x)
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(forwards):
            model(x)
        gc.collect()
        end = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    return (end - start) / forwards


def monitor_rows() -> None:
    model = build("spikeyolo", "n").eval().fuse(verbose=False)
    with FiringRateMonitor(model):
        ours = _retained_bytes_per_forward(model)
    with monitor.OutputMonitor(model, ILIF, lambda s: (float(s.detach().sum(dtype=torch.float64)), s.numel())):
        theirs = _retained_bytes_per_forward(model)
    print(f"\nfiring-rate hooks, SpikeYOLO-n, 64 px{'ours':>13}{'OutputMonitor':>15}")
    print(f"Python memory retained per forward, KiB{ours / 1024:>11.1f}{theirs / 1024:>15.1f}")


def reset_rows(repeats: int) -> None:
    model = build("spikeyolo", "n")

    def walk() -> None:  # the model's earlier reset: one walk, its list reset before and after the forward
        memories = [m for m in model.modules() if isinstance(m, base.MemoryModule)]
        for _ in range(2):
            for m in memories:
                m.reset()

    def reset_net() -> None:
        functional.reset_net(model)
        functional.reset_net(model)

    times = interleaved_ms([lambda: [walk() for _ in range(100)], lambda: [reset_net() for _ in range(100)]], repeats)
    print(f"\nneuron reset, SpikeYOLO-n{'module walk':>25}{'reset_net':>12}{'ratio':>8}")
    walk_us, reset_net_us = (10 * statistics.median(t) for t in times)  # 100 calls per timed run
    print(f"µs per forward (2 resets){walk_us:>25.0f}{reset_net_us:>12.0f}{_ratio(times):>7.2f}x")


def main() -> None:
    args = bench_arguments(__doc__)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    neuron_rows(args.repeats)
    over_time_rows(args.repeats)
    monitor_rows()
    reset_rows(args.repeats)


if __name__ == "__main__":
    main()
