"""Import a released reference checkpoint into a SpikeDetectionModel, exactly.

The architecture is read from the tensors (width → scale, layer-25 hidden width → as-shipped or
release form, class count) and from the neuron class in the pickle (spikingjelly LIF → Gen1
dynamics); the matching configuration is built and the weights are loaded with ``strict=True``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..cfg import load_model_yaml
from ..nn.model import SpikeDetectionModel
from .restricted import UnsafeCheckpointError, load_restricted, pickle_globals

_REFERENCE_PREFIXES = ("ultralytics.nn.modules.yolo_spikformer.", "spikingjelly.clock_driven.")
_GEN1_NEURON = "spikingjelly.clock_driven.neuron.MultiStepLIFNode"
# stem width int(128 · width) → scale, per model family (their scale tables differ)
_COCO_SCALES = {48: "n", 64: "s", 80: "m", 96: "l"}
_GEN1_SCALES = {32: "n", 64: "s", 96: "m", 128: "l", 160: "x"}
_STEM, _CLS_OUT, _LAYER25_HIDDEN = "model.1.encode_conv.weight", "model.26.cv3.0.2.conv.weight", "model.25.conv1.body.2.1.weight"


class ReferenceCheckpointError(ValueError):
    """A reference-format file whose content does not describe a SpikeYOLO model."""


@dataclass
class ReferenceCheckpoint:
    """What a released checkpoint holds, in plain tensors and dicts.

    Attributes:
        path: the file read.
        state_dict: FP32 tensors (integer buffers unchanged) from ``ema`` if present, else ``model``.
        names: class index → name from the checkpoint.
        family: ``"coco"`` (I-LIF, leak 0.25) or ``"gen1"`` (spikingjelly LIF patched to leak 0.5,
            halved input).
        scale: n/s/m/l(/x for Gen1), from the stem width.
        release_layer25: layer 25 is ``MS_ConvBlock [2, 7]`` (the released 48M/69M form).
        form: ``"training"`` (optimizer and EMA present) or ``"stripped"``.
        train_args: the training arguments stored in the file.
    """

    path: str
    state_dict: dict[str, torch.Tensor]
    names: dict[int, str]
    family: str
    scale: str
    release_layer25: bool
    form: str
    train_args: dict = field(default_factory=dict)

    @property
    def nc(self) -> int:
        """Number of classes, from the class branch's output width."""
        return int(self.state_dict[_CLS_OUT].shape[0])

    def model_config(self) -> dict:
        """The model YAML dict that reproduces this checkpoint's architecture."""
        name = f"snn_yolov8{self.scale}-gen1.yaml" if self.family == "gen1" else f"snn_yolov8{self.scale}.yaml"
        cfg = load_model_yaml(name)
        cfg["nc"] = self.nc
        if self.family == "coco" and not self.release_layer25:
            cfg["scale_args"] = {k: v for k, v in (cfg.get("scale_args") or {}).items() if k != self.scale}
        return cfg


def is_reference_checkpoint(path: str | Path) -> bool:
    """True if the file is a torch zip pickle referencing the reference fork's classes."""
    try:
        return any(g.startswith(_REFERENCE_PREFIXES) for g in pickle_globals(path))
    except (zipfile.BadZipFile, ValueError, OSError, UnsafeCheckpointError):
        return False


def load_reference_checkpoint(path: str | Path) -> ReferenceCheckpoint:
    """Read a reference checkpoint through the restricted unpickler.

    Raises:
        UnsafeCheckpointError: globals outside the allow-list.
        ReferenceCheckpointError: no model inside, or tensors of an unknown architecture.
    """
    path = str(path)
    family = "gen1" if _GEN1_NEURON in pickle_globals(path) else "coco"
    ckpt = load_restricted(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), torch.nn.Module):
        raise ReferenceCheckpointError(f"'{path}' holds no 'model' or 'ema' module: not a SpikeYOLO checkpoint")
    source = ckpt.get("ema") or ckpt["model"]
    state = {k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    for key in (_STEM, _CLS_OUT):
        if key not in state:
            raise ReferenceCheckpointError(f"'{path}' lacks '{key}': not a SpikeYOLO detector")
    widths = _GEN1_SCALES if family == "gen1" else _COCO_SCALES
    stem = int(state[_STEM].shape[0])
    if stem not in widths:
        raise ReferenceCheckpointError(f"'{path}': stem width {stem} matches no {family} scale {sorted(widths)}")
    scale = widths[stem]
    hidden = state.get(_LAYER25_HIDDEN)
    release_layer25 = hidden is not None and int(hidden.shape[0]) == 2 * int(hidden.shape[1])
    names = getattr(source, "names", None) or {i: str(i) for i in range(int(state[_CLS_OUT].shape[0]))}
    names = dict(names.items()) if isinstance(names, dict) else dict(enumerate(names))
    form = "training" if ckpt.get("optimizer") is not None or ckpt.get("ema") is not None else "stripped"
    args = ckpt.get("train_args")
    return ReferenceCheckpoint(path, state, names, family, scale, release_layer25, form, dict(args or {}))


def build_reference_model(ref: ReferenceCheckpoint) -> SpikeDetectionModel:
    """A SpikeDetectionModel with the checkpoint's architecture, names and weights (``strict=True``).

    Raises:
        ReferenceCheckpointError: the tensors do not fit the detected architecture.
    """
    model = SpikeDetectionModel(ref.model_config(), verbose=False)
    try:
        model.load_state_dict(ref.state_dict, strict=True)
    except RuntimeError as e:
        raise ReferenceCheckpointError(
            f"'{ref.path}' does not match SpikeYOLO-{ref.scale} ({ref.family}, nc={ref.nc}): {e}"
        ) from e
    if len(ref.names) != ref.nc:
        raise ReferenceCheckpointError(f"'{ref.path}': {len(ref.names)} class names for {ref.nc} classes")
    model.names = ref.names
    return model.eval()
