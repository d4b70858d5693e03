"""Reduced-precision execution of the spiking detector (autocast), an option next to exact fp32.

Spike counts 0..D are exact in bfloat16 and float16; what autocast rounds are weights, membrane
potentials and convolution sums, so a few counts near a rounding boundary change. ``fp32`` (the
default) keeps every exactness guarantee of the package.
"""

from __future__ import annotations

import contextlib

import torch

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(value: object) -> str:
    """Normalise a precision setting: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``False``/``None`` mean fp32. ``True`` is refused because it is ambiguous here (ultralytics'
    ``amp=True`` means fp16 with a GPU check, which does not exist on CPU).

    Raises:
        ValueError: any other value.
    """
    if value is None or value is False:
        return "fp32"
    text = str(value).lower()
    if value is True or text not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {list(AUTOCAST_DTYPES)}, got {value!r}")
    return text


def autocast_for(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to the precision's dtype on ``device_type``; a no-op context for fp32.

    fp32 returns a null context rather than a disabled autocast, so an enclosing autocast (the
    ultralytics trainer's fp16 AMP on CUDA) stays in force.

    Raises:
        ValueError: fp16 on CPU (slower than fp32 there: the CPU has no fp16 arithmetic; use bf16).
    """
    dtype = AUTOCAST_DTYPES[check_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    if dtype is torch.float16 and device_type == "cpu":
        raise ValueError("fp16 autocast is for CUDA; on CPU use bf16")
    return torch.autocast(device_type, dtype=dtype)


@contextlib.contextmanager
def model_precision(model: torch.nn.Module, precision: object):
    """Run ``model`` (a ``SpikeDetectionModel``) at ``precision`` inside the block, restoring it after."""
    previous = model.precision
    model.precision = check_precision(precision)
    try:
        yield model
    finally:
        model.precision = previous
