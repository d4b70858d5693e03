"""Training: the stock ultralytics detection trainer, building a SpikeDetectionModel.

The trainer also runs as one worker of a ``torchrun`` world, on one node or several, on GPUs (NCCL)
or CPUs (gloo); see :class:`SpikeDetectionTrainer` for what that changes in ultralytics' trainer.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from copy import deepcopy
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from ultralytics.engine import trainer as ultralytics_trainer
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils import DEFAULT_CFG, LOCAL_RANK, LOGGER, RANK, WORLD_SIZE
from ultralytics.utils.torch_utils import strip_optimizer, torch_distributed_zero_first, unwrap_model

from ..cfg import load_model_yaml
from ..nn.model import SpikeDetectionModel
from ..nn.training_keys import training_setting
from .bn_recalibration import recalibrate_every_epoch
from .spike_budget import SpikeBudgetLoss, install_spike_budget

DDP_TIMEOUT_ENV = "SPIKEYOLO_DDP_TIMEOUT"
# ultralytics' 3 hours: ranks wait at barriers while global rank 0 alone writes label caches and
# strips the final checkpoints, which takes long on large datasets.
DEFAULT_DDP_TIMEOUT_S = 3 * 3600


def ddp_timeout() -> timedelta:
    """How long a rank waits for the others (process-group set-up and every collective).

    ``SPIKEYOLO_DDP_TIMEOUT`` (seconds) if set, else ultralytics' 3 hours.

    Raises:
        ValueError: the variable is not a positive number.
    """
    value = os.environ.get(DDP_TIMEOUT_ENV, str(DEFAULT_DDP_TIMEOUT_S))
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"{DDP_TIMEOUT_ENV}={value!r} is not a positive number of seconds")
    return timedelta(seconds=seconds)


def check_global_batch(batch: float, world_size: int) -> None:
    """``batch`` is the global batch (as in ultralytics), split evenly over the ``world_size`` processes.

    ultralytics floors ``batch / world_size`` without a word, so ``batch=10`` on 4 GPUs would
    silently train with 8 images a step; here that is refused.

    Raises:
        ValueError: ``batch`` is a whole batch that ``world_size`` does not divide.
    """
    if world_size > 1 and batch >= 1 and int(batch) % world_size:
        lower, upper = max(int(batch) // world_size, 1) * world_size, -(-int(batch) // world_size) * world_size
        hint = f"batch={lower}" + (f" or batch={upper}" if upper != lower else "")
        raise ValueError(f"batch={int(batch)} is the global batch and must be divisible by the world size "
                         f"{world_size} (one share per process), e.g. {hint}")


def _partial(path: Path) -> Path:
    """Where a checkpoint is written before it replaces ``path`` (no ``*.pt`` name: never mistaken for one)."""
    return path.with_name(path.name + ".partial")


def _publish(path: Path) -> None:
    """Rename ``path``'s partial file, if one was written, over ``path``.

    ``os.replace`` is atomic: a process killed at any point leaves the old file or the new one,
    never a torn one (a power cut is not covered: nothing is fsynced).
    """
    if _partial(path).exists():
        os.replace(_partial(path), path)


def _strip_optimizer_atomically(f: str | Path = "best.pt", s: str | Path = "", updates: dict | None = None) -> dict:
    """ultralytics' ``strip_optimizer``, writing through a partial file instead of over ``f`` in place."""
    target = Path(s or f)
    _partial(target).unlink(missing_ok=True)
    stripped = strip_optimizer(f, s=_partial(target), updates=updates)
    _publish(target)
    return stripped


def keep_epochs(csv: Path, epochs: int) -> int:
    """Keep the header and rows of epochs ``1..epochs`` of a ``results.csv``; return how many rows were dropped.

    A run killed after writing an epoch's row but before saving that epoch's checkpoint trains
    the epoch again on resume; its first row must go (and so must a row cut short by the kill).
    """
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if line.endswith("\n") and float(line.split(",", 1)[0]) <= epochs]
    if len(kept) < len(lines):
        _partial(csv).write_text("".join(kept), encoding="utf-8")
        _publish(csv)
    return len(lines) - len(kept)


# How long a rank that lost its peers waits for the others to report before naming the silent ones:
# ranks see a dead peer's connections close within milliseconds of each other.
FAILURE_REPORT_WAIT_S = 5.0


def _is_lost_peer(e: BaseException) -> bool:
    """A collective that failed because another rank is gone or hung, not this rank's own error."""
    return isinstance(e, dist.DistError) or "gloo" in str(e)  # gloo raises a plain RuntimeError


def _world_failure(e: Exception) -> Exception:
    """Report this rank's failure to the world's store and, for a rank that lost its peers, name the rank at fault.

    A rank failing with its own error records it and gives it back unchanged. A rank whose
    collective failed because a peer is gone returns an error naming the rank that recorded an
    error first, or, when none did within ``FAILURE_REPORT_WAIT_S``, the ranks that never
    reported (killed, e.g. out of memory, or hung). The store is torchrun's, reached like the
    process group (``MASTER_ADDR``, ``MASTER_PORT``); if it cannot be used, ``e`` comes back.
    """
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=FAILURE_REPORT_WAIT_S))
        run = f"spikeyolo/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        if not _is_lost_peer(e):
            store.set(f"{run}/failed/{RANK}", f"{type(e).__name__}: {e}"[:500])
            return e
        store.set(f"{run}/lost/{RANK}", "")
        ranks = range(dist.get_world_size())
        deadline = time.monotonic() + FAILURE_REPORT_WAIT_S
        while time.monotonic() < deadline:
            if failed := [r for r in ranks if store.check([f"{run}/failed/{r}"])]:
                error = store.get(f"{run}/failed/{failed[0]}").decode()
                return RuntimeError(f"rank {RANK}: training stopped because rank {failed[0]} failed: {error}")
            time.sleep(0.2)
        silent = [str(r) for r in ranks if not store.check([f"{run}/lost/{r}"])]
    except (KeyError, ValueError, RuntimeError):  # no store address, or the store's host is gone too
        return e
    if not silent:
        return e
    return RuntimeError(f"rank {RANK}: training stopped because rank(s) {', '.join(silent)} stopped without an "
                        f"error (killed, e.g. out of memory, or hung); their node's torchrun log has the rest")


class _DistributedDataParallelOnCPU(nn.parallel.DistributedDataParallel):
    """DDP called as ultralytics calls it, ``device_ids=[device.index]``, which torch refuses for a CPU module."""

    def __init__(self, module: nn.Module, device_ids: list | None = None, **kwargs):
        super().__init__(module, **kwargs)


@contextlib.contextmanager
def _cpu_ddp() -> Iterator[None]:
    """Inside the block, ``nn.parallel.DistributedDataParallel`` accepts ultralytics' ``device_ids`` on CPU."""
    ddp = nn.parallel.DistributedDataParallel
    nn.parallel.DistributedDataParallel = _DistributedDataParallelOnCPU
    try:
        yield
    finally:
        nn.parallel.DistributedDataParallel = ddp


class SpikeDetectionTrainer(DetectionTrainer):
    """``DetectionTrainer`` building a SpikeDetectionModel; ``amp="bf16"`` trains in bfloat16 on any device.

    ultralytics' own bf16 autocast refuses to run on CPU, so with ``amp="bf16"`` the model autocasts
    its forward pass itself (``SpikeDetectionModel.precision``, copied into the EMA and saved with
    the checkpoints) and ultralytics' AMP is switched off for the run (bf16 needs no gradient
    scaler). Checkpoints still record ``amp: bf16`` in their training arguments. A model whose config
    sets ``spike_budget`` trains, and its EMA validates, with :mod:`spikeyolo.engine.spike_budget`'s
    criterion; one that sets ``bn_recalibrate`` recalibrates its EMA at every epoch end
    (:func:`~spikeyolo.engine.bn_recalibration.recalibrate_every_epoch`); both set up in ``_setup_train``.

    Args:
        cfg, overrides, _callbacks: as ultralytics' ``DetectionTrainer``.
        model_overrides: model-config keys to set on every model this trainer builds (e.g.
            ``{"criterion": "reference"}``, see :mod:`spikeyolo.nn.training_keys`). Not a training
            argument: ultralytics refuses keys outside its default config. The built model carries
            them in its ``yaml``, hence in its checkpoints, which is how a resumed run keeps them.

    Distributed training. ultralytics' trainer spawns its own workers from ``device=0,1,...`` and
    assumes one machine; under ``torchrun`` (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` set) each
    process is a worker, and these overrides make that world work on any number of nodes:

    * ``__init__``: the world size is the environment's ``WORLD_SIZE`` (ultralytics counts the
      ``device`` list, and 0 on CPU); ``batch`` must divide evenly over it.
    * ``_setup_ddp``: CPU joins with gloo, CUDA with NCCL on GPU ``LOCAL_RANK`` (or the
      ``LOCAL_RANK``-th of a ``device`` list of one GPU per process); time-out :func:`ddp_timeout`.
    * ``_setup_train``: the DDP wrapper is allowed on CPU.
    * ``get_dataloader``: global rank 0 builds each dataset first, then each node's local rank 0.
    * ``validate``: every rank takes rank 0's BatchNorm statistics, so all end with equal weights.

    Only global rank 0 writes checkpoints, plots and ``results.csv`` (ultralytics' own rule).
    Checkpoints are written to a partial file renamed over the old one, and a resumed run drops
    the ``results.csv`` rows of epochs its checkpoint does not contain.
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None,
                 model_overrides: dict | None = None):
        super().__init__(cfg, overrides, _callbacks)
        self.model_overrides = dict(model_overrides or {})
        if RANK != -1:  # a worker of torchrun or of ultralytics' launcher: the world is the environment's
            self.world_size = WORLD_SIZE
        check_global_batch(self.batch_size, self.world_size)

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> SpikeDetectionModel:
        """Build a SpikeDetectionModel for the dataset's classes and channels; load ``weights`` if given."""
        if self.model_overrides:
            cfg = {**load_model_yaml(cfg), **self.model_overrides}
        model = SpikeDetectionModel(cfg, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1)
        if weights:
            model.load(weights)
        return model

    def train(self) -> None:
        """ultralytics' training; a multi-GPU run with ``model_overrides`` builds its model here first.

        In a distributed world, a rank whose collective fails because another rank is gone names
        that rank (see :func:`_world_failure`); ultralytics only passes on the backend's error
        ("Connection closed by peer [address]"), and torchrun names the rank that failed only on
        that rank's own node.

        ultralytics' DDP launcher re-creates the trainer in each worker from its class and
        ``vars(self.args)`` only, which would drop ``model_overrides``, but hands the workers
        ``self.model`` as it is; built before the launch, the model takes its overrides along in its
        ``yaml`` (a run from a checkpoint already has it built by ultralytics' ``Model.train``).
        """
        if self.ddp and self.model_overrides and not isinstance(self.model, nn.Module):
            self.setup_model()
        try:
            super().train()
        except Exception as e:
            if RANK == -1 or not dist.is_initialized():
                raise
            failure = _world_failure(e)
            if failure is e:
                raise
            raise failure from e

    def _setup_ddp(self) -> None:
        """Join the process group on this worker's device.

        ultralytics' version only knows accelerators (it would pick ``cuda`` for ``device=cpu``),
        takes the GPU at position ``LOCAL_RANK`` of the ``device`` list (so a ``torchrun`` worker
        without ``device`` fails) and waits 3 hours for a missing rank. NPU and XPU keep
        ultralytics' version.

        Raises:
            ValueError: ``device`` lists GPUs, but not one per process of this node.
            ConnectionError: the others did not join within :func:`ddp_timeout`.
        """
        if self.device.type == "cpu":
            backend = "gloo"
        elif self.device.type == "cuda":
            listed = [d for d in self.args.device.split(",") if d]
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            if listed and len(listed) != local_world:
                raise ValueError(f"device={self.args.device} lists {len(listed)} GPU(s) for {local_world} processes "
                                 f"on this node: list one per process, or none (process i then takes GPU i)")
            self.device = torch.device("cuda", int(listed[LOCAL_RANK]) if listed else LOCAL_RANK)
            torch.cuda.set_device(self.device)
            os.environ["TORCH_NCCL_BLOCKING_WAIT"] = "1"  # as ultralytics: NCCL collectives obey the time-out
            backend = "nccl"
        else:
            return super()._setup_ddp()
        timeout = ddp_timeout()
        try:
            dist.init_process_group(backend, timeout=timeout, rank=RANK, world_size=self.world_size)
        except dist.DistError as e:
            where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
            raise ConnectionError(f"rank {RANK} of {self.world_size} could not join the others at {where} within "
                                  f"{timeout.total_seconds():g} s ({DDP_TIMEOUT_ENV}): is every node started and "
                                  f"the address reachable? ({type(e).__name__}: {e})") from e

    def _setup_train(self) -> None:
        self.train_precision = "bf16" if str(self.args.amp).lower() == "bf16" else "fp32"
        if self.train_precision == "bf16":
            self.args.amp = False
        with _cpu_ddp() if self.world_size > 1 and self.device.type == "cpu" else contextlib.nullcontext():
            super()._setup_train()  # builds the model if needed, then the EMA copy of it
        models = [unwrap_model(m) for m in (self.model, self.ema.ema if self.ema else None) if isinstance(m, nn.Module)]
        for model in models:
            model.precision = self.train_precision  # unwrapped: through a DDP wrapper
        install_spike_budget(*models)  # the EMA's too: its validation losses have the same items
        if n_batches := training_setting(models[0].yaml, "bn_recalibrate"):
            recalibrate_every_epoch(self, n_batches)

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """ultralytics' loader; in a distributed run global rank 0 builds the dataset before any other rank.

        ultralytics lets each node's local rank 0 build it (and write its label cache) first. On
        several nodes sharing a file system those ranks would write the same cache at once; with
        global rank 0 first they find it written, and nodes with their own copy still build theirs
        on their local rank 0 before the rest.
        """
        with torch_distributed_zero_first(RANK if rank != -1 else -1):
            return super().get_dataloader(dataset_path, batch_size, rank, mode)

    def validate(self):
        """ultralytics' validation; in a distributed run every rank first takes rank 0's BatchNorm statistics.

        ultralytics' DDP does not synchronise buffers, so each rank's running statistics follow its
        own share of the data, and before validating it copies only the EMA's from rank 0. The
        model's own are copied too: BN-and-pad borders read them during training, and every rank
        then carries on from, and ends with, the model rank 0 saves.
        """
        if self.world_size > 1:
            for buffer in unwrap_model(self.model).buffers():
                dist.broadcast(buffer, src=0)
        return super().validate()

    def resume_training(self, ckpt: dict | None) -> None:
        """ultralytics' resume, then ``results.csv`` cut back to the epochs the checkpoint holds (see :func:`keep_epochs`)."""
        super().resume_training(ckpt)
        resumed = ckpt is not None and self.resume and RANK in {-1, 0} and self.csv.exists()
        if resumed and (dropped := keep_epochs(self.csv, self.start_epoch)):
            LOGGER.info(f"Resume: dropped {dropped} results.csv row(s) after epoch {self.start_epoch}, "
                        f"written after {self.args.model} was saved")

    def save_model(self):
        """ultralytics' checkpoint, written to partial files renamed over last.pt and best.pt.

        ultralytics writes the bytes straight over the old files, so a kill during the write would
        leave a torn last.pt (the one ``resume`` needs) or best.pt. The ``amp`` argument saved is
        the one the user gave (resume trains in bf16 again). A spike-budget criterion's hooks leave
        the EMA while ultralytics copies it for the checkpoint, which must not reference them.
        """
        amp, last, best = self.args.amp, self.last, self.best
        if getattr(self, "train_precision", "fp32") == "bf16":
            self.args.amp = "bf16"
        self.last, self.best = _partial(last), _partial(best)
        for path in (self.last, self.best):
            path.unlink(missing_ok=True)  # left by a killed run: must not be published now
        criterion = getattr(self.ema.ema, "criterion", None)  # ultralytics drops it from its copy, not its hooks
        try:
            with criterion.tally.detached() if isinstance(criterion, SpikeBudgetLoss) else contextlib.nullcontext():
                written = super().save_model()  # truthy when written: ultralytics then runs on_model_save
        finally:
            self.args.amp, self.last, self.best = amp, last, best
        for path in (last, best):
            _publish(path)
        return written

    def final_eval(self) -> None:
        """ultralytics' final evaluation of best.pt, with the optimizer stripped from the checkpoints atomically.

        ultralytics strips them by saving over last.pt and best.pt in place; here each is saved to
        a partial file renamed over it, as in :meth:`save_model`. On a CPU world best.pt is
        validated as during training (see :class:`_CheckpointAsEMA`): ultralytics' stand-alone
        validation puts every DDP rank on a CUDA device, which a CPU-only machine has not.
        """
        validator = self.validator
        if self.world_size > 1 and self.device.type == "cpu":
            self.validator = _CheckpointAsEMA(self)
        ultralytics_trainer.strip_optimizer = _strip_optimizer_atomically
        try:
            super().final_eval()
        finally:
            ultralytics_trainer.strip_optimizer = strip_optimizer
            self.validator = validator


class _CheckpointAsEMA:
    """The trainer's validator, called as ``validator(model=path)``, validating that checkpoint as training validates.

    Its weights go into a copy of the trainer's EMA for the call, so each rank validates its share
    of the data on its own device and rank 0 gathers the results (the per-class table that a
    stand-alone validation prints is not printed).
    """

    def __init__(self, trainer: SpikeDetectionTrainer):
        self.trainer, self.validator = trainer, trainer.validator

    def __getattr__(self, name: str):
        return getattr(self.validator, name)

    def __call__(self, model: str | Path) -> dict:
        ema = self.trainer.ema
        trained, checkpoint = ema.ema, deepcopy(ema.ema)
        checkpoint.load_state_dict(load_checkpoint(model)[0].state_dict())
        ema.ema = checkpoint
        try:
            return self.validator(self.trainer) or {}  # ranks other than 0 get None
        finally:
            ema.ema = trained
