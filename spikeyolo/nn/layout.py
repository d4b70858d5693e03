"""The memory layout of the detector's weights and activations, chosen per device type.

Why a choice at all: every convolution of SpikeYOLO runs on 5-D activations ``[T, B, C, H, W]``
whose frames are laid out either channels-last (memory ``[T, B, H, W, C]``) or channels-first.
On CPUs oneDNN's channels-last kernels are much faster (depthwise 7×7 about 4× on two cores,
``docs/performance.md``), so the package was tuned channels-last end to end. On CUDA the best
layout is a cuDNN question (NHWC tensor-core kernels against depthwise and large-kernel
convolutions that may only have fast NCHW kernels), answered by measuring: ``python bench/gpu.py``
times both. Everything that lays a tensor out asks :func:`memory_format` with that tensor's device,
so the choice is one line per device type below, and a benchmark can override it
(:func:`set_memory_format`, :func:`using_memory_format`) without environment variables.

The weights follow too: a convolution runs channels-last if its input *or* its weight is, so
``SpikeDetectionModel`` lays its 4-D parameters out for their device whenever it is built, fused
or moved (``.to(device)``, ``.half()``...). Set a format before building or moving a model;
activations follow a change at once, weights at the model's next move.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

FORMATS = (torch.channels_last, torch.contiguous_format)

DEFAULT_FORMATS: dict[str, torch.memory_format] = {
    "cpu": torch.channels_last,  # oneDNN: docs/performance.md, "What makes it fast"
    # bench/gpu.py, one H200, SpikeYOLO-s, 640 px: channels-first trained 9 % slower (174.0 against
    # 159.2 ms fp32, 113.4 against 99.9 fp16) and inferred 33 % slower (62.3 against 47.0 ms, batch 32)
    "cuda": torch.channels_last,
}
FALLBACK_FORMAT = torch.channels_last  # device types without an entry above

_formats: dict[str, torch.memory_format] = dict(DEFAULT_FORMATS)


def _device_type(device: torch.device | str) -> str:
    return device.type if isinstance(device, torch.device) else torch.device(device).type


def memory_format(device: torch.device | str) -> torch.memory_format:
    """The layout the detector uses on ``device`` (``torch.channels_last`` or ``torch.contiguous_format``)."""
    return _formats.get(_device_type(device), FALLBACK_FORMAT)


def set_memory_format(device: torch.device | str, fmt: torch.memory_format | None) -> torch.memory_format:
    """Use ``fmt`` on every device of ``device``'s type (``"cuda"``, ``"cuda:1"`` and ``"cpu"`` alike).

    ``None`` restores the default. Returns the format in force before, so a caller can restore it.

    Raises:
        ValueError: ``fmt`` is neither channels-last nor contiguous (channels-first).
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"memory format must be torch.channels_last or torch.contiguous_format, got {fmt}")
    kind = _device_type(device)
    previous = memory_format(kind)
    fmt = DEFAULT_FORMATS.get(kind) if fmt is None else fmt
    if fmt is None:
        _formats.pop(kind, None)  # a device type without a default falls back to FALLBACK_FORMAT
    else:
        _formats[kind] = fmt
    return previous


@contextlib.contextmanager
def using_memory_format(device: torch.device | str, fmt: torch.memory_format) -> Iterator[None]:
    """:func:`set_memory_format` inside the block, the previous format restored after it."""
    previous = set_memory_format(device, fmt)
    try:
        yield
    finally:
        set_memory_format(device, previous)


def lay_out(module: torch.nn.Module) -> torch.nn.Module:
    """Lay every 4-D parameter and buffer of ``module`` out in its device's format, in place; returns it.

    Same conversion as ``module.to(memory_format=...)``, but per tensor device, and through the
    plain ``nn.Module._apply`` so that a model can call it from its own ``_apply``.
    """

    def convert(t: torch.Tensor) -> torch.Tensor:
        return t.to(memory_format=memory_format(t.device)) if t.dim() == 4 else t

    return torch.nn.Module._apply(module, convert)
