"""BatchNorm recalibration (the PreciseBN idea): exact statistics of the final weights before evaluation.

During training a BatchNorm normalises each batch by that batch's own mean and variance and keeps an
exponential moving average of them for evaluation. On short runs that average lags the weights: it
still mixes in statistics of weights from many steps ago. In a spiking network the lag is not
harmless: a neuron fires only when its BN output crosses the threshold, so statistics of earlier
weights can leave eval-mode neurons nearly silent (docs/events.md: the Gen1 demo after 3 epochs
fired 0.17 spikes per neuron output in eval mode, 0.28 once recalibrated, and scored mAP50 0
against 0.18).

:func:`recalibrate_bn` replaces every running mean and variance by the **average of the per-batch
statistics** over N batches, computed with the final weights. The average of the batch means is the
population mean (equal batches); for the variance the average of per-batch variances is kept rather
than the pooled variance (which adds the spread of the batch means): it is what the network was
trained under, since every training step divided by its own batch's variance, and it is what
torch's running average converges to for fixed weights. Per call, a BN sees the time-merged
``[T·B, C, H, W]`` activations of the SpikeYOLO blocks, so its statistics run over ``T·B·H·W``
values per channel, as in training.

:class:`~spikeyolo.nn.reparam.BNAndPadLayer` pads with its BN's output for a zero input, read from
the running statistics. During recalibration every BN's momentum is 1, so right after each call its
running statistics are that batch's: the border of each batch is then the zero response of the same
normalisation as its interior, the relation that evaluation (running statistics for both) keeps.

The images are training images as validation loads them (no augmentation; ultralytics' rectangular
letterbox with half a stride of padding, or the event datasets' square one): the statistics are
those of the inputs evaluation sees. The batches are drawn at random with a fixed seed, so
consecutive frames of one recording (event data) do not fill a batch and each call uses the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from copy import copy

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from ultralytics.cfg import get_cfg
from ultralytics.data import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset
from ultralytics.utils import LOGGER, RANK, IterableSimpleNamespace
from ultralytics.utils.torch_utils import select_device

from ..events.dataset import build_event_dataset

__all__ = ["recalibrate_bn", "recalibrate_every_epoch", "recalibrate_for_validation", "training_images"]

_SHUFFLE_SEED = 0


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BatchNorm's running mean and variance to the average of its per-batch statistics.

    The model runs in eval mode except its BatchNorms (training mode, momentum 1), without gradient,
    on each input of ``batches``; every BN call's batch mean and unbiased variance are summed in
    float64 and their averages become the running statistics. Parameters are untouched; each
    module's training flag, each BN's momentum and ``num_batches_tracked`` are restored, and on an
    error the old running statistics too. A BN that no batch reaches keeps its statistics.

    Args:
        model: any module with BatchNorms, e.g. a SpikeDetectionModel (not fused).
        batches: model inputs, e.g. ``[B, 3, H, W]`` images in [0, 1] or ``[B, T, 3, H, W]`` event frames.

    Returns:
        The number of batches used.

    Raises:
        ValueError: the model has no BatchNorm with running statistics (a fused or exported model),
            or ``batches`` is empty.
    """
    norms = _batchnorms(model)
    if not norms:
        raise ValueError("the model has no BatchNorm to recalibrate (fused for inference, or exported)")
    training = {m: m.training for m in model.modules()}
    saved = {bn: (bn.momentum, bn.num_batches_tracked.clone(), bn.running_mean.clone(), bn.running_var.clone())
             for bn in norms}
    sums = {bn: [torch.zeros_like(bn.running_mean, dtype=torch.float64),
                 torch.zeros_like(bn.running_var, dtype=torch.float64), 0] for bn in norms}

    def accumulate(bn: nn.modules.batchnorm._BatchNorm, inputs, output) -> None:
        total = sums[bn]  # momentum 1: the running statistics now are this call's batch statistics
        total[0] += bn.running_mean
        total[1] += bn.running_var
        total[2] += 1

    hooks = [bn.register_forward_hook(accumulate) for bn in norms]
    model.eval()
    for bn in norms:
        bn.train()
        bn.momentum = 1.0
    used, done = 0, False
    try:
        for images in batches:
            model(images)
            used += 1
        if not used:
            raise ValueError("no batch to recalibrate the BatchNorm statistics on")
        for bn, (mean, var, calls) in sums.items():
            if calls:
                bn.running_mean.copy_(mean / calls)
                bn.running_var.copy_(var / calls)
            else:
                bn.running_mean.copy_(saved[bn][2])
                bn.running_var.copy_(saved[bn][3])
        done = True
    finally:
        for hook in hooks:
            hook.remove()
        for bn, (momentum, tracked, mean, var) in saved.items():
            bn.momentum = momentum
            bn.num_batches_tracked.copy_(tracked)
            if not done:
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
        for m, flag in training.items():
            m.training = flag
    return used


def _train_split_loader(cfg: IterableSimpleNamespace, data: dict, batch: int, stride: int) -> DataLoader:
    """The training split as validation loads it (no augmentation, not cached), in batches drawn at random.

    Image datasets get ultralytics' rectangular validation batches, each a group of images of one
    letterbox shape, so the draw picks whole groups; event datasets are square, so any ``batch`` images.
    """
    cfg = IterableSimpleNamespace(**{**vars(cfg), "rect": True, "cache": False})
    generator = torch.Generator().manual_seed(_SHUFFLE_SEED)
    if isinstance(data.get("events"), dict):
        dataset = build_event_dataset(cfg, data["train"], batch, data, mode="val", stride=stride)
        order = torch.randperm(len(dataset), generator=generator).tolist()
        batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    else:
        dataset = build_yolo_dataset(cfg, data["train"], batch, data, mode="val", stride=stride)
        groups = [np.flatnonzero(dataset.batch == b).tolist() for b in range(int(dataset.batch.max()) + 1)]
        batches = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
    return DataLoader(dataset, batch_sampler=batches, num_workers=0, collate_fn=dataset.collate_fn)


def training_images(loader: DataLoader, n_batches: int, device: torch.device) -> Iterator[torch.Tensor]:
    """The images of the first ``n_batches`` batches of ``loader``: float in [0, 1] on ``device``
    (``[B, 3, H, W]``, or ``[B, T, 3, H, W]`` for event data), as ultralytics preprocesses them."""
    for i, batch in enumerate(loader):
        if i == n_batches:
            return
        yield batch["img"].to(device).float() / 255


def _stride(model: nn.Module) -> int:
    return max(int(model.stride.max()), 32)


def recalibrate_every_epoch(trainer, n_batches: int) -> None:
    """From now on, ``trainer`` recalibrates its EMA model on ``n_batches`` training batches at every epoch end.

    The trainer's model config key ``bn_recalibrate`` (:mod:`spikeyolo.nn.training_keys`) sets
    ``n_batches``, so a resumed run and every worker of a distributed run recalibrate as the run
    began. The recalibration runs on ``on_train_epoch_end``, which ultralytics calls before the
    epoch's validation and checkpoint, so each epoch's mAP, the choice of best.pt and the saved EMA
    all have recalibrated statistics. Only rank 0 (or the single process) recalibrates: ultralytics
    copies rank 0's EMA buffers to every rank before validating. The batches have the training
    batch size and the validation's letterbox.
    """
    loader = None

    def recalibrate(trainer) -> None:
        nonlocal loader
        if RANK not in {-1, 0} or trainer.ema is None:
            return
        ema = trainer.ema.ema
        if loader is None:
            loader = _train_split_loader(copy(trainer.args), trainer.data, trainer.train_loader.batch_size, _stride(ema))
        recalibrate_bn(ema, training_images(loader, n_batches, trainer.device))

    trainer.add_callback("on_train_epoch_end", recalibrate)


def recalibrate_for_validation(model: nn.Module, args: dict, n_batches: int) -> int:
    """Recalibrate ``model`` on ``n_batches`` batches of the training split of ``args["data"]``, in place.

    ``args`` are the validation's ultralytics arguments (``data``, ``imgsz``, ``batch``, ``device`` ...);
    the batches have the validation's ``batch`` and ``imgsz``. Returns the number of batches used.

    Raises:
        TypeError: ``model`` is an exported model, not a PyTorch one.
        ValueError: ``model`` is fused (no BatchNorm left), or no ``data`` is given.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"bn_recalibrate needs a PyTorch checkpoint, not the exported model '{model}'")
    if not args.get("data"):
        raise ValueError("bn_recalibrate needs the dataset whose training images to use: data=path/to/data.yaml")
    cfg = get_cfg(overrides={k: v for k, v in args.items() if k != "mode"})
    data = check_det_dataset(cfg.data, autodownload=False)
    device = select_device(cfg.device, verbose=False)
    model.to(device)
    loader = _train_split_loader(cfg, data, cfg.batch, _stride(model))
    used = recalibrate_bn(model, training_images(loader, n_batches, device))
    LOGGER.info(f"BatchNorm statistics recalibrated on {used} batches of {cfg.batch} training images")
    return used
