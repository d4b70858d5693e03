"""Turn a reference checkpoint into a ready model or into a checkpoint in this package's format."""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime
from pathlib import Path

import torch
from ultralytics import __version__ as ultralytics_version
from ultralytics.cfg import DEFAULT_CFG_DICT

from ..nn.model import SpikeDetectionModel
from .reference import build_reference_model, load_reference_checkpoint


def import_reference_model(path: str | Path) -> SpikeDetectionModel:
    """The FP32 SpikeDetectionModel of a released checkpoint, with ultralytics' loading attributes.

    ``args`` keeps the training arguments ultralytics still knows (the stored dataset path is the
    authors'; pass ``data=`` to validate), ``task`` is detect and ``pt_path`` the source file.
    """
    ref = load_reference_checkpoint(path)
    model = build_reference_model(ref)
    model.args = {**DEFAULT_CFG_DICT, **{k: v for k, v in ref.train_args.items() if k in DEFAULT_CFG_DICT}}
    model.args["task"] = "detect"
    model.task = "detect"
    model.pt_path = str(path)
    return model


def convert_reference_checkpoint(source: str | Path, target: str | Path, overwrite: bool = False) -> Path:
    """Write ``source`` (reference format) to ``target`` as an ultralytics checkpoint of this package.

    The result holds a FP16 ``SpikeDetectionModel`` like a stripped checkpoint trained here, loads
    with ``SpikeYOLO(target)`` and under ``ULTRALYTICS_SAFE_LOAD=1`` / ``weights_only=True``.

    Raises:
        FileExistsError: ``target`` exists and ``overwrite`` is False.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"'{target}' exists; pass overwrite=True (--overwrite) to replace it")
    if target.resolve() == Path(source).resolve():
        raise ValueError("target must differ from source: the reference file is never modified")
    model = import_reference_model(source)
    train_args = {k: v for k, v in model.args.items() if k in DEFAULT_CFG_DICT}
    model.args = train_args
    ckpt = {
        "date": datetime.now().isoformat(),
        "version": ultralytics_version,
        "epoch": -1,
        "best_fitness": None,
        "model": deepcopy(model).half(),
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": train_args,
        "train_metrics": None,
        "train_results": None,
        "converted_from": str(source),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    torch.save(ckpt, partial)
    partial.replace(target)  # a failed write never leaves a truncated target
    return target
