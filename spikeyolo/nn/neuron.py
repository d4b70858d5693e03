"""The I-LIF neuron: integer-valued leaky integrate-and-fire, as trained by SpikeYOLO.

Dynamics per time step t (``v`` is the membrane potential after reset, ``v_{-1} = 0``)::

    u_t = decay · v_{t-1} + input_scale · x_t
    s_t = round(clamp(u_t, 0, D))            # integer count 0..D, round half to even
    v_t = u_t − stopgrad(s_t)                 # soft reset by the emitted count

With ``decay=0.25, input_scale=1`` this is the COCO neuron of the reference
(``u_t = 0.25·(u_{t-1} − s_{t-1}) + x_t``); with ``decay=0.5, input_scale=0.5`` it is the
Gen1 neuron (spikingjelly LIF with tau 2 and a patched firing function). The backward pass is
a straight-through estimator inside the closed window ``[0, D]``; the reset path is detached,
the leak path is not (BPTT through the membrane).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import base

from .saved_counts import mark_counts

__all__ = ["ILIF", "quantize_count"]


class _IntegerCount(torch.autograd.Function):
    """round(clamp(u, 0, D)) with a window straight-through gradient.

    Only a 1-byte mask is kept for backward, not the float input.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, max_count: int) -> torch.Tensor:
        clamped = torch.clamp(u, 0, max_count)
        ctx.save_for_backward(clamped == u)  # inside the closed window [0, D]; NaN is outside
        return clamped.round_()  # in place: one allocation less per neuron call

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (inside,) = ctx.saved_tensors
        return grad_output * inside, None


def quantize_count(u: torch.Tensor, max_count: int) -> torch.Tensor:
    """Integer spike count ``round(clamp(u, 0, max_count))``, any shape, same dtype as ``u``.

    Uses the straight-through autograd function only when a gradient is needed, so inference
    traces to plain ``Clip``/``Round`` operations (ONNX export, ``torch.jit.trace``).
    """
    if torch.is_grad_enabled() and u.requires_grad:
        return _IntegerCount.apply(u, max_count)
    return torch.clamp(u, 0, max_count).round_()


class ILIF(base.MemoryModule):
    """Integer LIF neuron, a spikingjelly ``MemoryModule``.

    Args:
        max_count: D, the largest integer the neuron emits per time step (4 in SpikeYOLO).
        decay: membrane leak β applied to the post-reset potential (0.25 COCO, 0.5 Gen1).
        input_scale: factor on the input current (1 COCO, 0.5 Gen1).
        step_mode: ``"m"`` (input ``[T, ...]``, default, as used by the SpikeYOLO blocks) or
            ``"s"`` (one step ``[...]`` per call, state kept until ``functional.reset_net``).

    The membrane state ``v`` is a spikingjelly memory, so ``functional.reset_net`` resets it and
    monitors hook the module as usual. With ``carry_state = False`` the membrane returns to rest
    after each call instead of being kept for the next one, which saves computing the final
    ``v`` (one elementwise pass per call); the detection model sets this, as it resets its
    neurons after every forward anyway. The detection model resets every neuron before and after
    each forward pass, which reproduces the reference's state-free per-forward behaviour and keeps
    the module safe to deep-copy (no tensor attached to an autograd graph survives a forward).
    Counts that carry a gradient are marked (:mod:`.saved_counts`) so that the detection model
    keeps them as bytes for backward.

    Kept instead of spikingjelly's ``neuron.ILIFNode`` (same counts and input gradients, bit for bit:
    tests/nn/test_neuron.py); figures from ``python bench/spikingjelly_parity.py``, ``[4, 8, 64, 40, 40]``:

    - CPU speed: forward+backward 15.3 vs 53.4 ms (3.4x), no-grad forward 4.5 vs 17.0 ms (3.8x).
    - Memory: backward keeps a 1-byte window mask, 3.1 vs 37.5 MiB (ILIFNode: three floats per element).
    - ONNX: inference traces to ``Clip``/``Round``; ILIFNode's custom op ``sj_ilif::forward`` cannot export.
    - Deep copy: with ``carry_state = False`` no graph-attached ``v`` remains; ILIFNode's makes deepcopy raise.
    - CUDA: eager, not compiled: ``torch.compile`` of clamp + round + mask made SpikeYOLO-s's training step
      slower on an H200 (227.2 against 159.2 ms fp32, batch 16, 640 px; ``bench/gpu.py``). spikingjelly's
      own CUDA/Triton I-LIF kernels (what ``ILIFNode`` runs on a GPU) are not measured there yet:
      ``bench/gpu.py``'s row "neuron from spikingjelly".
    """

    def __init__(self, max_count: int = 4, decay: float = 0.25, input_scale: float = 1.0, step_mode: str = "m"):
        super().__init__()
        if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 1:
            raise ValueError(f"ILIF max_count (D) must be a positive integer, got {max_count!r}")
        self.max_count = max_count
        self.decay = float(decay)
        self.input_scale = float(input_scale)
        self.register_memory("v", 0.0)
        self.step_mode = step_mode
        self.carry_state = True

    @property
    def D(self) -> int:  # noqa: N802 - the paper's name for the maximum count
        """The maximum integer count per time step."""
        return self.max_count

    def reset(self) -> None:
        """Return the membrane to rest. Same effect as spikingjelly's ``reset``, cheaper and traceable.

        The rest value is the Python float registered in ``__init__`` (immutable, so it needs no
        copy); the detection model calls this for every neuron before each forward pass.
        """
        for name, rest in self._memories_rv.items():
            self._memories[name] = rest if isinstance(rest, float) else rest.clone()

    def extra_repr(self) -> str:
        return f"D={self.max_count}, decay={self.decay}, input_scale={self.input_scale}, step_mode={self.step_mode}"

    def _charge(self, x: torch.Tensor, v: torch.Tensor | float) -> torch.Tensor:
        current = x if self.input_scale == 1.0 else x * self.input_scale
        if isinstance(v, float) and v == 0.0:  # fresh state: skip the leak term (bit-identical, faster)
            return current
        return self.decay * v + current

    def single_step_functional_forward(self, inputs, states, **kwargs):
        """One step: ``x [N, ...]`` and state ``v`` → ``(count [N, ...],), (v_next,)``."""
        u = self._charge(inputs[0], states[0])
        s = quantize_count(u, self.max_count)
        return (mark_counts(s, self.max_count),), (self._final_state(u, s),)

    def _final_state(self, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor | float:
        """The membrane ``v`` kept after the last step: soft reset by the count, or rest (0)."""
        return u - s.detach() if self.carry_state else 0.0

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        """All steps: ``x [T, N, ...]`` → ``(counts [T, N, ...],), (v_T,)``."""
        x_seq, v = inputs[0], states[0]
        # squeeze/unbind, not indexing: the gradient of x_seq[t] is a fresh zero tensor (channels-first,
        # full size) per step, which would turn every later backward op to the slow layout
        if x_seq.shape[0] == 1:
            u = self._charge(x_seq.squeeze(0), v)
            s = quantize_count(u, self.max_count)
            return (mark_counts(s, self.max_count).unsqueeze(0),), (self._final_state(u, s),)
        counts = []
        for t, x in enumerate(x_seq.unbind(0)):
            u = self._charge(x, v)
            s = quantize_count(u, self.max_count)
            v = u - s.detach() if t < len(x_seq) - 1 else self._final_state(u, s)
            counts.append(s)
        return (mark_counts(torch.stack(counts), self.max_count),), (v,)
