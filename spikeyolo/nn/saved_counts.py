"""Spike counts kept for backward as bytes: a saved-tensor hook for training.

Every convolution fed by an I-LIF saves its input, the neuron's counts, for its weight gradient.
Those counts are integers 0..D, so they are kept as ``uint8`` (1 byte per element instead of 4)
and turned back into the exact same floats when backward needs them; nothing else changes.
"""

from __future__ import annotations

import contextlib

import torch

_MARK = "_spikeyolo_counts"  # attribute on a neuron's output tensor


def mark_counts(counts: torch.Tensor, max_count: int) -> torch.Tensor:
    """Flag ``counts`` (a neuron's output, integers 0..``max_count``) as storable in bytes; returns it."""
    if max_count <= 255 and counts.requires_grad and not torch.compiler.is_compiling():  # compiled graphs save their own way
        setattr(counts, _MARK, True)
    return counts


def _pack(t: torch.Tensor):
    root = t if t._base is None else t._base  # convolutions save views ([T·B, C, H, W]) of the output
    if getattr(root, _MARK, False) and t.dtype in (torch.float32, torch.float64):
        return t.to(torch.uint8), t.dtype  # keeps the strides (channels-last) of a dense tensor
    return t


def _unpack(packed):
    if isinstance(packed, tuple):
        counts, dtype = packed
        return counts.to(dtype)
    return packed


def counts_saved_as_bytes() -> contextlib.AbstractContextManager:
    """Inside the block, tensors autograd saves that are marked counts are stored as ``uint8``.

    A null context when nothing is saved (no grad) or under ``torch.compile``, which cannot trace
    saved-tensor hooks (the compiled graph decides what it keeps for backward).
    """
    if not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return contextlib.nullcontext()
    return torch.autograd.graph.saved_tensors_hooks(_pack, _unpack)
