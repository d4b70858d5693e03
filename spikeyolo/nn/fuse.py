"""Re-parameterised inference: every SpikeYOLO block folds its BatchNorms into its convolutions.

Each :class:`~spikeyolo.nn.spiking_block.SpikingBlock` knows which norm follows which
convolution and folds itself; this module only walks a model. The two exact forms, factorised
(``fuse()``'s default, fastest on CPUs) and dense (each chain one k×k convolution, needed for
spike-driven execution), are described in :mod:`spikeyolo.nn.reparam`.
"""

from __future__ import annotations

from torch import nn

from .spiking_block import SpikingBlock


def _fusing_blocks(model: nn.Module) -> list[SpikingBlock]:
    return [m for m in model.modules() if isinstance(m, SpikingBlock) and m.fusions]


def fuse_spiking_modules(model: nn.Module, dense: bool = False) -> int:
    """Fold BN (and, with ``dense``, the factorised chains) of every SpikeYOLO block in place (eval only).

    Returns:
        The number of blocks fused.

    Raises:
        RuntimeError: ``model`` is already fused.
    """
    if is_fused(model):
        raise RuntimeError("this SpikeYOLO model is already fused; fuse a fresh (unfused) copy instead")
    blocks = _fusing_blocks(model)
    for block in blocks:
        block.fuse(dense)
    return len(blocks)


def densify_spiking_modules(model: nn.Module) -> int:
    """Turn every factorised chain of a fused model into one dense conv; returns how many (0 for dense models)."""
    return sum(block.densify() for block in _fusing_blocks(model))


def to_dense_form(model: nn.Module) -> None:
    """Re-parameterise ``model`` in place into its dense form, whether unfused or fused factorised.

    ultralytics' ``fuse()`` (AutoBackend) leaves the factorised form, so a model may arrive either way.
    """
    if is_fused(model):
        densify_spiking_modules(model)
    else:
        fuse_spiking_modules(model, dense=True)


def is_fused(model: nn.Module) -> bool:
    """True if ``model`` contains SpikeYOLO blocks with norms to fold and every one has folded them."""
    blocks = _fusing_blocks(model)
    return bool(blocks) and all(block.is_fused() for block in blocks)
