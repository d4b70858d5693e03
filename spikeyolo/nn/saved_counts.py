"""Spike counts kept for backward as bytes: a saved-tensor hook for training.

Every convolution fed by an I-LIF saves its input, the neuron's counts, for its weight gradient.
Those counts are integers 0..D, so they are kept as ``uint8`` (1 byte per element instead of 4)
and turned back into the exact same floats when backward needs them; nothing else changes.
The conversion is spikingjelly's ``memopt.Uint8SpikeCompressor``; spikingjelly applies its
compressors only to the input of a recomputed ``memopt.checkpoint`` segment, so choosing which
saved tensors are counts (a mark on the neuron's output) is done here. Kept on CUDA too: on one H200
(bench/gpu.py, SpikeYOLO-s, batch 16, 640 px, fp32) bytes need 11.6 GiB against 15.7 for float
counts, for 5 % more step time (159.2 against 151.4 ms).
"""

from __future__ import annotations

import contextlib

import torch
from spikingjelly.activation_based.memopt import Uint8SpikeCompressor

_COMPRESSOR = Uint8SpikeCompressor()
_MARK = "_spikeyolo_counts"  # attribute on a neuron's output tensor


def mark_counts(counts: torch.Tensor, max_count: int) -> torch.Tensor:
    """Flag ``counts`` (a neuron's output, integers 0..``max_count``) as storable in bytes; returns it."""
    if max_count <= 255 and counts.requires_grad and not torch.compiler.is_compiling():  # compiled graphs save their own way
        setattr(counts, _MARK, True)
    return counts


def _root(t: torch.Tensor) -> torch.Tensor:
    return t if t._base is None else t._base  # convolutions save views ([T·B, C, H, W]) of the output


def carry_mark(source: torch.Tensor, copy: torch.Tensor) -> torch.Tensor:
    """Flag ``copy`` (a copy of ``source`` in another layout) as counts if ``source`` is; returns it."""
    if getattr(_root(source), _MARK, False) and copy.requires_grad and not torch.compiler.is_compiling():
        setattr(copy, _MARK, True)
    return copy


def _pack(t: torch.Tensor):
    if getattr(_root(t), _MARK, False) and t.dtype in (torch.float32, torch.float64):
        return _COMPRESSOR.compress(t)  # (uint8 with the strides of t, e.g. channels-last; dtype; shape)
    return t


def _unpack(packed):
    return _COMPRESSOR.decompress(packed) if isinstance(packed, tuple) else packed


def counts_saved_as_bytes() -> contextlib.AbstractContextManager:
    """Inside the block, tensors autograd saves that are marked counts are stored as ``uint8``.

    A null context when nothing is saved (no grad) or under ``torch.compile``, which cannot trace
    saved-tensor hooks (the compiled graph decides what it keeps for backward).
    """
    if not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return contextlib.nullcontext()
    return torch.autograd.graph.saved_tensors_hooks(_pack, _unpack)
