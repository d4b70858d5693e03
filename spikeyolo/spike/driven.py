"""Spike-driven inference: every integer count becomes D binary spikes, every synapse an addition.

In this mode each convolution fed by an I-LIF receives the neuron's counts ``s ∈ {0..D}`` as D
binary planes (thermometer code, time-major: the D virtual steps of one real step are
contiguous, spikingjelly's ``SpikeCountToBinary``), runs bias-free on those {0, 1} planes,
integrates the D partial sums (``TemporalBinSum``) and only then adds its bias once — the
re-parameterised model has folded every BatchNorm into that bias, so normalisation is also
applied once to the integrated sum, never per virtual step. Because ``W·s = Σ_v W·b_v`` for a
bias-free linear map, the result equals integer inference up to float summation order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from spikingjelly.activation_based.layer.misc import SpikeCountToBinary, TemporalBinSum
from torch import nn

from ..nn.fuse import to_dense_form
from ..nn.neuron import ILIF
from ..nn.synapses import synapses


class BinaryInputLedger:
    """Counts, per wrapped convolution, the forward calls whose inputs were verified to be {0, 1}.

    Shared (not copied) by deep copies of a model, so checks made on ultralytics' validation copy
    are seen by the caller.
    """

    def __init__(self):
        self.checked: dict[str, int] = {}

    def __deepcopy__(self, memo) -> BinaryInputLedger:
        return self


class SpikeDrivenConv(nn.Module):
    """A spike-consuming ``nn.Conv2d`` run on D binary planes.

    Args:
        conv: the (re-parameterised) convolution; its weights are shared, its bias added once.
        D: virtual steps per real step (the neurons' maximum count).
        name: the conv's module path, for the ledger and error messages.
        ledger: where verified binary inputs are counted; ``None`` skips the check.

    Input ``[N, C, H, W]`` integer counts in {0..D} (N = T·B) → output ``[N, C', H', W']``.
    """

    def __init__(self, conv: nn.Conv2d, D: int, name: str, ledger: BinaryInputLedger | None = None):
        super().__init__()
        self.conv, self.D, self.name, self.ledger = conv, D, name, ledger
        self.expand = SpikeCountToBinary(D, always_convert=True)
        self.integrate = TemporalBinSum(D, always_convert=True)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        if counts.numel() and (counts.max() > self.D or counts.min() < 0):
            raise ValueError(f"{self.name}: input counts reach {counts.max().item():g}, outside 0..D={self.D}")
        planes = self.expand(counts)  # [N·D, C, H, W]
        if self.ledger is not None:
            if not bool(((planes == 0) | (planes == 1)).all()):
                raise AssertionError(f"{self.name} received non-binary input in spike-driven mode")
            self.ledger.checked[self.name] = self.ledger.checked.get(self.name, 0) + 1
        c = self.conv
        out = self.integrate(nn.functional.conv2d(planes, c.weight, None, c.stride, c.padding, c.dilation, c.groups))
        return out if c.bias is None else out + c.bias.view(1, -1, 1, 1)


@contextlib.contextmanager
def spike_driven(model: nn.Module, D: int | None = None, check: bool = True) -> Iterator[BinaryInputLedger]:
    """Run ``model`` spike-driven inside the ``with`` block; yields the binary-input ledger.

    The model is re-parameterised first into its dense form (every neuron feeds one convolution
    whose bias holds all folded BatchNorms, applied once after integration) and stays so
    afterwards, like after ultralytics' own ``fuse()``; the binary wrappers are removed on exit.

    Args:
        model: a SpikeYOLO ``nn.Module`` (``SpikeDetectionModel``) in eval mode.
        D: expected virtual steps per real step; must equal the neurons' D (default: theirs).
        check: verify at run time that every wrapped conv sees only 0 and 1.

    Raises:
        TypeError: the model has no I-LIF neurons (not a spiking model).
        ValueError: ``D`` differs from the neurons' D, or the neurons disagree on D.
    """
    neurons = [m for m in model.modules() if isinstance(m, ILIF)]
    if not neurons:
        raise TypeError(f"{type(model).__name__} has no I-LIF neurons: spike-driven mode needs a SpikeYOLO model")
    ds = {n.max_count for n in neurons}
    if len(ds) != 1:
        raise ValueError(f"neurons disagree on D ({sorted(ds)}); spike-driven mode needs one D")
    trained_d = ds.pop()
    if D is not None and D != trained_d:
        raise ValueError(f"D={D} does not match the model's trained D={trained_d}")
    to_dense_form(model)
    ledger = BinaryInputLedger() if check else None
    swapped = []
    for syn in list(synapses(model)):
        conv = getattr(syn.owner, syn.conv_attr)
        setattr(syn.owner, syn.conv_attr, SpikeDrivenConv(conv, trained_d, syn.conv, ledger))
        swapped.append((syn.owner, syn.conv_attr, conv))
    try:
        yield ledger if ledger is not None else BinaryInputLedger()
    finally:
        for owner, name, conv in swapped:
            setattr(owner, name, conv)
