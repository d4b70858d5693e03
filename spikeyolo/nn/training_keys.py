"""Training settings kept in the model config: ``criterion``, ``spike_budget`` and ``bn_recalibrate``.

ultralytics refuses training arguments outside its default config, so these are keys of the model
YAML (``SpikeDetectionModel.yaml``) instead. Every checkpoint saves them with the model, so a resumed
run keeps them, and so do the workers of ultralytics' multi-GPU launcher, which rebuild the trainer
from its arguments alone but receive the model. ``SpikeYOLO.train(key=value)`` (or
``spikeyolo train key=value``) sets one for a run and for the checkpoints it writes; with ``resume``
the checkpoint's own are kept. Absent means the default. :data:`TRAINING_KEYS` lists them:

- ``criterion``: the training loss, ``"ultralytics"`` or ``"reference"`` (:mod:`.criterion`);
- ``spike_budget``: λ ≥ 0, the weight of the loss on synaptic operations (``spikeyolo.engine.spike_budget``);
- ``bn_recalibrate``: N ≥ 0 training batches on which the EMA's BatchNorm statistics are
  recalibrated at every epoch end (``spikeyolo.engine.bn_recalibration``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .criterion import CRITERIA, DEFAULT_CRITERION


@dataclass(frozen=True)
class TrainingKey:
    """One setting: its value when absent, and what a valid value is (``rule``, for error messages)."""

    default: Any
    rule: str
    valid: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


TRAINING_KEYS: dict[str, TrainingKey] = {
    "criterion": TrainingKey(DEFAULT_CRITERION, f"one of {', '.join(CRITERIA)}", lambda v: v in CRITERIA),
    "spike_budget": TrainingKey(
        0.0, "a non-negative finite number (0 = off, e.g. 0.1)",
        lambda v: _number(v) and math.isfinite(v) and v >= 0, float,
    ),
    "bn_recalibrate": TrainingKey(
        0, "a whole number of training batches, 0 or more (0 = off, e.g. 4)",
        lambda v: _number(v) and float(v).is_integer() and v >= 0, int,
    ),
}


def check_training_setting(key: str, value: Any) -> Any:
    """``value`` of the setting ``key`` as it is used (``spike_budget`` a float, ``bn_recalibrate`` an int).

    Raises:
        KeyError: ``key`` is not one of :data:`TRAINING_KEYS`.
        ValueError: ``value`` breaks the key's rule (the message names the key and the rule).
    """
    setting = TRAINING_KEYS[key]
    if not setting.valid(value):
        raise ValueError(f"{key} must be {setting.rule}, got {value!r}")
    return setting.convert(value)


def training_setting(model_yaml: dict, key: str) -> Any:
    """The value of ``key`` a model config selects: its own, else the default.

    Raises:
        ValueError: the config holds a value that breaks the key's rule; the message names the
            config's YAML file when it has one.
    """
    try:
        return check_training_setting(key, model_yaml.get(key, TRAINING_KEYS[key].default))
    except ValueError as e:
        where = f"model config {model_yaml['yaml_file']}" if model_yaml.get("yaml_file") else "model config"
        raise ValueError(f"{where}: {e}") from None


def check_training_settings(model_yaml: dict) -> None:
    """Every setting a model config holds is valid (see :func:`training_setting`)."""
    for key in TRAINING_KEYS:
        training_setting(model_yaml, key)
