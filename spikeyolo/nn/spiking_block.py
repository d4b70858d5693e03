"""SpikingBlock: a SpikeYOLO block that declares its own structure.

Fusion (:mod:`.fuse`), the synapse table (:mod:`.synapses`), the ``firing`` initialisation
(:mod:`.init`) and the spike-driven audit read these declarations and never name a block's
attributes, so a new block is described in its own class only (as ultralytics' ``RepConv``
fuses itself). The declarations are class attributes: no parameter, buffer or instance
attribute is added, so state-dict keys and pickles (which store the concrete class) are those
the blocks had as plain ``nn.Module`` subclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from .reparam import densify_chain, fold_norm


@dataclass(frozen=True)
class Operation:
    """Work of one forward call that is not the addition of a weight on a binary spike.

    Attributes:
        operation: what is computed (``residual additions of real values``).
        kind: ``MAC``, ``add``, ``compare``, ``copy`` or ``exp``.
        count: operations in this call, whole batch.
    """

    operation: str
    kind: str
    count: float


# Counts the operations of one forward call of the observed module from its ``(inputs, output)``.
OperationCounter = Callable[[tuple[Any, ...], Any], list[Operation]]


@runtime_checkable
class DeclaresOperations(Protocol):
    """A module that lists its non-synaptic operations: every :class:`SpikingBlock`, and the head."""

    def audit_operations(self) -> list[tuple[nn.Module, OperationCounter]]:
        """``(module to observe, counter)`` pairs; each counter runs after every forward of its module."""


def _first_conv_macs(conv: nn.Conv2d) -> OperationCounter:
    def count(inputs: tuple, output: torch.Tensor) -> list[Operation]:
        macs = output.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        return [Operation("first conv on real-valued input", "MAC", macs)]
    return count


class SpikingBlock(nn.Module):
    """Base of the SpikeYOLO blocks on ``[T, B, C, H, W]``; subclasses declare their structure.

    Declarations (attribute names of the block; ``residual_norms`` may be dotted paths):

    * ``synapses``: ``(neuron, convolution)`` pairs, each I-LIF feeding exactly that convolution
      (a plain ``nn.Conv2d``, or a ``RepConv`` / ``SepRepConv`` that re-parameterises into one).
      A pair whose neuron an instance lacks (the first ``MS_DownSampling``) is a convolution
      fed by real values: it costs MACs, not spike-driven additions.
    * ``fusions``: ``(convolution, norm)`` pairs: the BatchNorm that :meth:`fuse` folds into the
      convolution that precedes it. Both must be direct children (they are replaced).
    * ``residual_norms``: the last norm of every residual branch ``x + branch(x)`` this block
      adds; the ``firing`` init zeroes their weights so the block starts as the identity.
    * ``residual_additions``: real-valued additions per output element (one per residual sum).

    Operations other than these (max-pools, ...) are added by overriding :meth:`audit_operations`.
    """

    synapses: ClassVar[tuple[tuple[str, str], ...]] = ()
    fusions: ClassVar[tuple[tuple[str, str], ...]] = ()
    residual_norms: ClassVar[tuple[str, ...]] = ()
    residual_additions: ClassVar[int] = 0

    def fed_by_neurons(self) -> list[tuple[str, str]]:
        """The declared ``(neuron, convolution)`` pairs whose neuron this instance has."""
        return [(n, c) for n, c in self.synapses if hasattr(self, n)]

    def fed_by_real_values(self) -> list[str]:
        """Convolutions of declared synapses whose neuron this instance lacks: they read real values."""
        return [c for n, c in self.synapses if not hasattr(self, n)]

    @torch.no_grad()
    def fuse(self, dense: bool = False) -> None:
        """Fold every declared norm into its convolution, in place (eval mode).

        A plain convolution absorbs its BN. Any other (RepConv, SepRepConv) first becomes its
        factorised chain (its ``fold()``), whose last convolution absorbs the BN; ``dense`` then
        merges that chain into one k×k convolution, the form in which each neuron feeds one
        convolution (spike-driven execution). The norm becomes ``nn.Identity``.
        """
        for conv_attr, norm_attr in self.fusions:
            conv = getattr(self, conv_attr)
            folded = fold_norm(conv if isinstance(conv, nn.Conv2d) else conv.fold(), getattr(self, norm_attr))
            setattr(self, conv_attr, densify_chain(folded) if dense and isinstance(folded, nn.Sequential) else folded)
            setattr(self, norm_attr, nn.Identity())

    def densify(self) -> int:
        """Merge each factorised chain left by :meth:`fuse` into one dense conv; returns how many."""
        chains = [c for c, _ in self.fusions if isinstance(getattr(self, c), nn.Sequential)]
        for c in chains:
            setattr(self, c, densify_chain(getattr(self, c)))
        return len(chains)

    def is_fused(self) -> bool:
        """True once every declared norm has been folded away (always true without ``fusions``)."""
        return all(isinstance(getattr(self, norm), nn.Identity) for _, norm in self.fusions)

    def residual_branch_norms(self) -> list[nn.BatchNorm2d]:
        """The modules named by ``residual_norms``."""
        return [self.get_submodule(path) for path in self.residual_norms]

    def audit_operations(self) -> list[tuple[nn.Module, OperationCounter]]:
        """The MACs of convolutions fed by real values, and the declared residual additions."""
        observed: list[tuple[nn.Module, OperationCounter]] = []
        for name in self.fed_by_real_values():
            conv = getattr(self, name)
            observed.append((conv, _first_conv_macs(conv)))
        if self.residual_additions:
            observed.append((self, lambda inputs, output: [
                Operation("residual additions of real values", "add", self.residual_additions * output.numel())]))
        return observed
