"""Restricted unpickling of reference checkpoints: an allow-list, inert stand-ins, nothing executed.

The released files are pickles of whole ``DetectionModel`` objects from a fork of ultralytics
8.0.197 (classes at ``ultralytics.nn.modules.yolo_spikformer.*``) plus loss objects and, for Gen1,
``spikingjelly.clock_driven`` neurons. They are read with torch's ``weights_only`` unpickler, in
which every allowed global resolves to an inert stand-in: module classes become
:class:`ReferenceModule` subclasses that only collect parameters, buffers and children; other
objects become :class:`ReferenceObject`. torch's own ``nn`` layers are allowed as themselves
(unpickling them only restores state). Any other global makes the whole file refused before a
single object is created.
"""

from __future__ import annotations

import functools
import pickle
import pickletools
import zipfile
from pathlib import Path

import torch
from torch import nn

_SPIKFORMER = "ultralytics.nn.modules.yolo_spikformer."
REFERENCE_MODULES = tuple(
    _SPIKFORMER + name
    for name in (
        "BNAndPadLayer", "MS_AllConvBlock", "MS_ConvBlock", "MS_DownSampling", "MS_GetT", "MS_StandardConv",
        "MultiSpike4", "RepConv", "SepConv", "SepRepConv", "SpikeConv", "SpikeConvWithoutBN", "SpikeDFL",
        "SpikeDetect", "SpikeSPPF", "mem_update",
    )
) + (
    "ultralytics.nn.modules.conv.Concat",
    "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.utils.loss.BboxLoss",
    "ultralytics.utils.tal.TaskAlignedAssigner",
    "spikingjelly.clock_driven.neuron.MultiStepLIFNode",
    "spikingjelly.clock_driven.surrogate.Sigmoid",
)
REFERENCE_OBJECTS = ("ultralytics.utils.IterableSimpleNamespace", "ultralytics.utils.loss.v8DetectionLoss")
TORCH_MODULES = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (nn.BatchNorm2d, nn.ModuleList, nn.Sequential, nn.Conv2d, nn.MaxPool2d, nn.Upsample, nn.BCEWithLogitsLoss)
}
# Globals torch's weights_only unpickler resolves itself (tensors, storages, containers).
TORCH_DATA = (
    "__builtin__.set", "builtins.set", "collections.OrderedDict", "torch.Size", "torch.device",
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    "torch.HalfStorage", "torch.FloatStorage", "torch.LongStorage", "torch.BFloat16Storage", "torch.DoubleStorage",
    "torch.IntStorage", "torch.BoolStorage", "torch.ByteStorage", "torch.CharStorage", "torch.ShortStorage",
)
ALLOWED = frozenset(REFERENCE_MODULES + REFERENCE_OBJECTS + tuple(TORCH_MODULES) + TORCH_DATA)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file references globals outside the allow-list; nothing was loaded."""


class ReferenceModule(nn.Module):
    """Inert stand-in for a reference module class: keeps parameters, buffers, children, attributes."""

    reference_path = ""

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"{self.reference_path} is an imported stand-in; build a SpikeYOLO model to run it")


class ReferenceObject:
    """Inert stand-in for a pickled non-module object (namespaces, loss objects)."""

    reference_path = ""

    def __setstate__(self, state) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


def _stand_ins() -> list[tuple[type, str]]:
    """(class, pickled path) pairs for torch's safe-globals mechanism, one stand-in class per path."""
    pairs = []
    for path in REFERENCE_MODULES:
        pairs.append((type(path.rpartition(".")[2], (ReferenceModule,), {"reference_path": path}), path))
    for path in REFERENCE_OBJECTS:
        pairs.append((type(path.rpartition(".")[2], (ReferenceObject,), {"reference_path": path}), path))
    pairs += [(cls, path) for path, cls in TORCH_MODULES.items()]
    return pairs


_STAND_INS = _stand_ins()


def _string_value(op, arg, memo: dict):
    if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING"):
        return arg
    if op.name in ("BINGET", "LONG_BINGET", "GET"):
        return memo.get(arg)
    return None


def pickle_globals(path: str | Path) -> frozenset[str]:
    """Every global a ``torch.save`` zip checkpoint's pickle references, found without unpickling.

    Remembered per file version (resolved path, inode, size, modification and change times; the
    change time moves with any write or ``utime``, so a replaced file is read afresh): loading one
    checkpoint asks several times (reference or own format, stock model, allow-list), and each
    walk over the pickle's opcodes takes ~60 ms for an n model.

    Raises:
        UnsafeCheckpointError: a global is built dynamically (``STACK_GLOBAL`` from computed names).
        zipfile.BadZipFile / ValueError: not a torch zip checkpoint.
        OSError: the file cannot be read.
    """
    resolved = Path(path).resolve()
    version = resolved.stat()
    return _pickle_globals(str(resolved), (version.st_ino, version.st_size, version.st_mtime_ns, version.st_ctime_ns))


@functools.lru_cache(maxsize=16)
def _pickle_globals(path: str, version: tuple[int, int, int, int]) -> frozenset[str]:
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not names:
            raise ValueError(f"'{path}' has no data.pkl: not a torch.save checkpoint")
        data = archive.read(names[0])
    found, memo, recent = set(), {}, []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            found.add(arg.replace(" ", "."))
        elif op.name.startswith("EXT"):
            raise UnsafeCheckpointError(f"'{path}' uses the pickle extension registry; refusing to load it")
        elif op.name == "STACK_GLOBAL":
            if len(recent) < 2 or None in recent[-2:]:
                raise UnsafeCheckpointError(f"'{path}' builds a global from computed names; refusing to load it")
            found.add(f"{recent[-2]}.{recent[-1]}")
        elif op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            key = len(memo) if op.name == "MEMOIZE" else arg
            memo[key] = recent[-1] if recent else None
        value = _string_value(op, arg, memo)
        if value is not None or op.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            recent.append(value)
    return frozenset(found)


def own_format_globals() -> frozenset[str]:
    """Globals a checkpoint written by this package may reference: tensors, layers, spikeyolo classes."""
    from ..nn import CHECKPOINT_CLASSES, LAYER_CLASSES

    # training checkpoints also carry the EMA's args namespace and numpy metric scalars
    extra = {"ultralytics.utils.IterableSimpleNamespace", "numpy.dtype", "numpy.core.multiarray.scalar",
             "numpy._core.multiarray.scalar"}
    return frozenset(TORCH_DATA) | extra | {f"{c.__module__}.{c.__qualname__}" for c in CHECKPOINT_CLASSES + LAYER_CLASSES}


def check_globals(path: str | Path, allowed: frozenset[str], what: str) -> None:
    """Refuse ``path`` unless every global its pickle references is in ``allowed``.

    Raises:
        UnsafeCheckpointError: listing every offending global; nothing was unpickled.
    """
    offending = sorted(pickle_globals(path) - allowed)
    if offending:
        raise UnsafeCheckpointError(
            f"'{path}' references globals outside the {what} allow-list: {', '.join(offending)}. "
            "Nothing was loaded or executed."
        )


def load_restricted(path: str | Path) -> dict:
    """Unpickle a reference checkpoint with stand-ins for its classes.

    Raises:
        UnsafeCheckpointError: globals outside the allow-list (all of them are listed).
    """
    check_globals(path, ALLOWED, "reference-checkpoint")
    with torch.serialization.safe_globals(_STAND_INS):
        return torch.load(path, map_location="cpu", weights_only=True)
