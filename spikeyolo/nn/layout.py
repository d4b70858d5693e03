"""The memory layout of the detector's weights and activations, chosen per device type.

Why a choice at all: every convolution of SpikeYOLO runs on 5-D activations ``[T, B, C, H, W]``
whose frames are laid out either channels-last (memory ``[T, B, H, W, C]``) or channels-first.
On CPUs oneDNN's channels-last kernels are much faster (depthwise 7×7 about 4× on two cores,
``docs/performance.md``), so the package was tuned channels-last end to end. On CUDA the best
layout is a cuDNN question (NHWC tensor-core kernels against depthwise and large-kernel
convolutions that may only have fast NCHW kernels), answered by measuring: ``python bench/gpu.py``
times both. Everything that lays a tensor out asks :func:`memory_format` with that tensor's device,
so the choice is one line per device type below (and per operation where one measured differently:
SepConv's depthwise convolution asks :func:`layout_of_depthwise`, and runs on a copy in its own
layout), and a benchmark can override it (:func:`set_memory_format`, :func:`using_memory_format`)
without environment variables.

The weights follow too: a convolution runs channels-last if its input *or* its weight is, so
``SpikeDetectionModel`` lays its 4-D parameters out for their device whenever it is built, fused
or moved (``.to(device)``, ``.half()``...). Set a format before building or moving a model;
activations follow a change at once, weights at the model's next move. A depthwise weight
``[C, 1, k, k]`` has the same memory order in both layouts but not the same strides, and the
strides vote: it is laid out as ``"depthwise training"``, so that a channels-first copy of the
input runs channels-first, while a channels-last input still runs channels-last on the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

FORMATS = (torch.channels_last, torch.contiguous_format)
# "all": every tensor the detector lays out; "depthwise training": SepConv's depthwise k×k convolution
# (``layout_of_depthwise``) while it trains in fp32, when it should differ from "all".
OPERATIONS = ("all", "depthwise training")

DEFAULT_FORMATS: dict[tuple[str, str], torch.memory_format] = {
    ("cpu", "all"): torch.channels_last,  # oneDNN: docs/performance.md, "What makes it fast"
    # bench/gpu.py, one H200, SpikeYOLO-s, 640 px: channels-first trained 9 % slower (174.0 against
    # 159.2 ms fp32, 113.4 against 99.9 fp16) and inferred 33 % slower (62.3 against 47.0 ms, batch 32)
    ("cuda", "all"): torch.channels_last,
    # bench/gpu_depthwise.py, same H200: forward + backward of SepConv-s's 12 depthwise 7×7 convolutions at
    # batch 16, 640 px, fp32: 40.2 ms channels-first with the copies there and back, 66.3 ms channels-last
    # (cuDNN's channels-last weight-gradient kernel: 46 of a 144 ms step). Under fp16 autocast the other
    # way round (43.4 against 13.7 ms), hence fp32 only.
    ("cuda", "depthwise training"): torch.contiguous_format,
}
FALLBACK_FORMAT = torch.channels_last  # device types without an entry above

_formats: dict[tuple[str, str], torch.memory_format] = dict(DEFAULT_FORMATS)


def _device_type(device: torch.device | str) -> str:
    return device.type if isinstance(device, torch.device) else torch.device(device).type


def _check(operation: str) -> None:
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(map(repr, OPERATIONS))}, got {operation!r}")


def memory_format(device: torch.device | str, operation: str = "all") -> torch.memory_format:
    """The layout of ``operation`` on ``device`` (``torch.channels_last`` or ``torch.contiguous_format``).

    An operation without a format of its own on that device type runs in the device's ``"all"`` format.
    """
    _check(operation)
    kind = _device_type(device)
    return _formats.get((kind, operation)) or _formats.get((kind, "all"), FALLBACK_FORMAT)


def set_memory_format(
    device: torch.device | str, fmt: torch.memory_format | None, operation: str = "all"
) -> torch.memory_format | None:
    """Use ``fmt`` for ``operation`` on every device of ``device``'s type (``"cuda"``, ``"cuda:1"`` alike).

    ``None`` restores the default. Returns the setting before (``None``: the operation had no format
    of its own), which restores it when passed back.

    Raises:
        ValueError: ``fmt`` is neither channels-last nor contiguous (channels-first), or ``operation``
            is not one of :data:`OPERATIONS`.
    """
    _check(operation)
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"memory format must be torch.channels_last or torch.contiguous_format, got {fmt}")
    key = (_device_type(device), operation)
    previous = _formats.get(key)
    fmt = DEFAULT_FORMATS.get(key) if fmt is None else fmt
    if fmt is None:
        _formats.pop(key, None)  # no default: the device type falls back (to "all", then FALLBACK_FORMAT)
    else:
        _formats[key] = fmt
    return previous


@contextlib.contextmanager
def using_memory_format(device: torch.device | str, fmt: torch.memory_format, operation: str = "all") -> Iterator[None]:
    """:func:`set_memory_format` inside the block, the previous setting restored after it."""
    previous = set_memory_format(device, fmt, operation)
    try:
        yield
    finally:
        set_memory_format(device, previous, operation)


def layout_of_depthwise(x: torch.Tensor) -> torch.memory_format:
    """The layout a depthwise k×k convolution runs its input ``x [N, C, H, W]`` in.

    ``"depthwise training"`` while gradients are on and ``x`` is fp32 (or fp64) without autocast (the
    case measured, see :data:`DEFAULT_FORMATS`), the device's format otherwise (inference, AMP).
    """
    kind = x.device.type
    full_precision = x.dtype in (torch.float32, torch.float64) and not torch.is_autocast_enabled(kind)
    return memory_format(kind, "depthwise training" if full_precision and torch.is_grad_enabled() else "all")


def lay_out(module: torch.nn.Module) -> torch.nn.Module:
    """Lay every 4-D parameter and buffer of ``module`` out in its device's format, in place; returns it.

    Depthwise weights ``[C, 1, k, k]`` get the device's ``"depthwise training"`` format (see above).

    Same conversion as ``module.to(memory_format=...)``, but per tensor device, and through the
    plain ``nn.Module._apply`` so that a model can call it from its own ``_apply``.
    """

    def convert(t: torch.Tensor) -> torch.Tensor:
        if t.dim() != 4:
            return t
        operation = "depthwise training" if t.shape[1] == 1 else "all"  # one input channel per group
        return t.to(memory_format=memory_format(t.device, operation))

    return torch.nn.Module._apply(module, convert)
