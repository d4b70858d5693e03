"""SpikeYOLO: the user-facing model, an ultralytics ``Model`` with its own task map."""

from __future__ import annotations

import contextlib
import zipfile
from functools import partial
from pathlib import Path

from torch import nn
from ultralytics.engine.model import Model
from ultralytics.models.yolo.detect import DetectionPredictor, DetectionValidator
from ultralytics.utils import LOGGER

from ..cfg import load_model_yaml, resolve_model_cfg
from ..checkpoints import is_reference_checkpoint
from ..checkpoints.restricted import check_globals, own_format_globals, pickle_globals
from ..checkpoints.convert import import_reference_model
from ..events.config import is_event_data, training_defaults
from ..nn.model import SpikeDetectionModel
from ..nn.neuron import ILIF
from ..nn.precision import model_precision
from ..nn.training_keys import TRAINING_KEYS, check_training_setting
from ..spike.driven import spike_driven as spike_driven_mode
from .bn_recalibration import recalibrate_for_validation
from .event_trainer import EventDetectionTrainer
from .event_validator import EventValidator
from .trainer import SpikeDetectionTrainer


def _check_checkpoint_file(path: str) -> None:
    """Refuse a file that is not a SpikeYOLO checkpoint before ultralytics tries to download or unpickle it.

    Released reference checkpoints pass (they are imported through the restricted path); any
    other ``.pt`` file must reference only this package's classes, which is read from the
    pickle's opcodes without executing it.

    Raises:
        FileNotFoundError: no such file.
        TypeError: the file is empty, not a torch zip archive, or holds a stock ultralytics model
            (another task, or a non-spiking detector).
        UnsafeCheckpointError: it references globals outside this package's checkpoint format.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' not found")
    if p.stat().st_size == 0:
        raise TypeError(f"checkpoint '{path}' is empty")
    if is_reference_checkpoint(path):
        return
    try:
        stock = sorted(g.rsplit(".", 1)[1] for g in pickle_globals(path) if g.startswith("ultralytics.nn.tasks."))
        if stock:  # named before the allow-list check: "another task" says more than a list of globals
            raise TypeError(f"'{path}' holds an ultralytics {stock[0]}, not a SpikeYOLO spiking detector; "
                            "run it with ultralytics (YOLO or the yolo command)")
        check_globals(path, own_format_globals(), "spikeyolo-checkpoint")
    except (zipfile.BadZipFile, ValueError) as e:
        raise TypeError(f"'{path}' is not a loadable checkpoint: truncated, or not a torch zip archive ({e})") from e


class SpikeYOLO(Model):
    """A SpikeYOLO detector with the ultralytics API: ``train``, ``val``, ``predict``, ``export``.

    Args:
        model: a model YAML (a path, or a packaged name such as ``"snn_yolov8s.yaml"``), a
            checkpoint ``.pt`` written by this package, or a released reference checkpoint
            (imported through a restricted unpickler, see :mod:`spikeyolo.checkpoints`).
        task: only ``"detect"``.
        verbose: print the model summary.

    Raises:
        FileNotFoundError: the YAML or checkpoint does not exist.
        TypeError: the file is empty, truncated, not a checkpoint, or holds a non-spiking model.
        ModelConfigError: the YAML is malformed or names unknown modules / wrong arguments.
    """

    def __init__(self, model: str | Path = "snn_yolov8n.yaml", task: str | None = None, verbose: bool = False):
        name = str(model).strip()
        if name.lower().endswith((".yaml", ".yml")):
            name = str(resolve_model_cfg(name))
            load_model_yaml(name)  # our clear errors for a malformed file, before ultralytics reads it
        elif name.lower().endswith(".pt"):
            _check_checkpoint_file(name)
        try:
            super().__init__(model=name, task=task or "detect", verbose=verbose)
        except (AttributeError, KeyError, TypeError) as e:  # a pickle that is not a checkpoint of a model
            raise TypeError(f"'{name}' is not a SpikeYOLO checkpoint ({type(e).__name__}: {e})") from e
        if isinstance(self.model, nn.Module) and not any(isinstance(m, ILIF) for m in self.model.modules()):
            raise TypeError(f"'{name}' holds a model without I-LIF neurons, not a SpikeYOLO detector; use ultralytics.YOLO")

    def _load(self, weights: str, task: str | None = None) -> None:
        """Load a checkpoint (already vetted by ``_check_checkpoint_file``) or an exported model.

        Released reference checkpoints are imported through the restricted path. Exported models
        (``.onnx``, ``.torchscript``) are handed to ultralytics as they are: AutoBackend runs them
        and nothing is unpickled.
        """
        if not (weights.lower().endswith(".pt") and is_reference_checkpoint(weights)):
            return super()._load(weights, task)
        self.model = import_reference_model(weights)
        self.ckpt = {"model": self.model, "train_args": self.model.args, "epoch": -1}
        self.task = "detect"
        self.overrides = self.model.args = self._reset_ckpt_args(self.model.args)
        self.ckpt_path = self.model.pt_path
        self.overrides["model"], self.overrides["task"] = weights, "detect"
        self.model_name = weights

    def train(self, trainer=None, **kwargs):
        """ultralytics training. Event data (a dataset YAML with an ``events`` block) trains with
        :class:`~spikeyolo.engine.event_trainer.EventDetectionTrainer`, under the YAML's ``hyp`` defaults.

        Besides ultralytics' arguments it takes the training settings of
        :mod:`spikeyolo.nn.training_keys`, which the model config carries (ultralytics refuses
        unknown arguments) and with it every checkpoint of the run:

        - ``criterion``: ``"ultralytics"`` or ``"reference"`` (:mod:`spikeyolo.nn.criterion`);
        - ``spike_budget=λ`` (≥ 0; :mod:`spikeyolo.engine.spike_budget`): adds λ × the synaptic
          operations per image, in thousands per input pixel, to the loss, shown as ``sop_loss``;
        - ``bn_recalibrate=N``: recalibrates the EMA model's BatchNorm statistics on N training
          batches at the end of every epoch, before its validation (:mod:`spikeyolo.engine.bn_recalibration`).

        Not given, the model's own apply (a checkpoint's, or the defaults); 0 turns a checkpoint's
        ``spike_budget`` or ``bn_recalibrate`` off. A resumed run keeps the checkpoint's: values
        given with ``resume`` are ignored, as ultralytics ignores changed arguments there.

        Raises:
            ValueError: a training setting breaks its rule (before anything is built).
        """
        data = kwargs.get("data") or self.overrides.get("data")
        if trainer is None and is_event_data(data):
            trainer = EventDetectionTrainer
            if not kwargs.get("resume"):  # a resumed run keeps its own arguments
                kwargs = {**training_defaults(data), **kwargs}
        model_overrides = {k: check_training_setting(k, kwargs.pop(k)) for k in TRAINING_KEYS if k in kwargs}
        if model_overrides and kwargs.get("resume"):
            given = " ".join(f"{k}={v!r}" for k, v in model_overrides.items())
            LOGGER.warning(f"Resume ignores {given}: the checkpoint's model config keeps its own.")
        elif model_overrides:
            trainer = partial(trainer or self._smart_load("trainer"), model_overrides=model_overrides)
        return super().train(trainer=trainer, **kwargs)

    def _precision(self, amp) -> contextlib.AbstractContextManager:
        """The model at precision ``amp`` (``"fp32"``, ``"bf16"``, ``"fp16"``) for one call; ``None``: as it is."""
        if amp is None:
            return contextlib.nullcontext()
        if not isinstance(self.model, SpikeDetectionModel):
            raise ValueError(f"amp={amp!r} applies to PyTorch models; this one is an exported '{self.model}'")
        return model_precision(self.model, amp)

    def val(self, validator=None, spike_driven: bool = False, amp: str | None = None, bn_recalibrate: int = 0,
            **kwargs):
        """ultralytics validation; ``spike_driven=True`` runs every synapse on binary spikes.

        The spike-driven run also records which convolutions were verified to see only 0 and 1:
        ``self.spike_ledger.checked`` (conv path → verified forward calls). ``amp="bf16"`` (or
        ``"fp16"`` on CUDA) runs the forward passes under autocast, ``"fp32"`` exactly; by default
        the model's own ``precision``. Event data validates with
        :class:`~spikeyolo.engine.event_validator.EventValidator`. ``bn_recalibrate=N`` first
        recalibrates the model's BatchNorm statistics in place on N batches of the dataset's training
        split (:func:`~spikeyolo.engine.bn_recalibration.recalibrate_for_validation`).

        Raises:
            ValueError: ``bn_recalibrate`` is not a whole number ≥ 0.
        """
        if bn_recalibrate := check_training_setting("bn_recalibrate", bn_recalibrate):
            recalibrate_for_validation(self.model, {**self.overrides, **kwargs}, bn_recalibrate)
        if validator is None and is_event_data(kwargs.get("data") or self.overrides.get("data")):
            validator = EventValidator
        with self._precision(amp):
            if not spike_driven:
                return super().val(validator=validator, **kwargs)
            with spike_driven_mode(self.model) as self.spike_ledger:
                return super().val(validator=validator, **kwargs)

    def predict(
        self, source=None, stream: bool = False, predictor=None, spike_driven: bool = False, amp: str | None = None, **kwargs
    ):
        """ultralytics prediction; ``spike_driven`` and ``amp`` as in :meth:`val` (not with ``stream=True``)."""
        if (spike_driven or amp is not None) and stream:
            raise ValueError("spike_driven and amp need stream=False (the setting ends when predict returns)")
        with self._precision(amp):
            if not spike_driven:
                return super().predict(source, stream, predictor, **kwargs)
            with spike_driven_mode(self.model) as self.spike_ledger:
                return super().predict(source, stream, predictor, **kwargs)

    @property
    def task_map(self) -> dict:
        """The classes ultralytics uses for each task (only detection)."""
        return {
            "detect": {
                "model": SpikeDetectionModel,
                "trainer": SpikeDetectionTrainer,
                "validator": DetectionValidator,
                "predictor": DetectionPredictor,
            }
        }
