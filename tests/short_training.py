"""Short training runs on the tiny dataset, and what ultralytics' multi-GPU launcher hands its workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from ultralytics.utils import DEFAULT_CFG_DICT
from ultralytics.utils.dist import ddp_cleanup, generate_ddp_file

from spikeyolo import SpikeYOLO
from spikeyolo.engine.trainer import SpikeDetectionTrainer


def train_args(data: Path, project: Path, name: str, epochs: int = 1, **extra) -> dict:
    """ultralytics train arguments of a CPU run at 64 px, batch 8, no plots."""
    return {"data": str(data), "imgsz": 64, "batch": 8, "epochs": epochs, "workers": 0, "plots": False,
            "device": "cpu", "project": str(project), "name": name, "exist_ok": True, **extra}


def run_keeping_epoch1(folder: Path, /, **train_kwargs) -> tuple[SpikeYOLO, Path]:
    """SpikeYOLO-n trained with ``train_kwargs``; the model and a copy of epoch 1's checkpoint in ``folder`` (to resume)."""
    resumable = folder / "epoch1.pt"

    def keep_first_epoch(trainer):
        if trainer.epoch == 0:
            shutil.copy(trainer.last, resumable)

    model = SpikeYOLO("snn_yolov8n.yaml")
    model.add_callback("on_model_save", keep_first_epoch)
    model.train(**train_kwargs)
    return model, resumable


class Launched(Exception):
    """Stops the DDP launch once the workers' state is written."""


def launched_worker(overrides: dict, model_overrides: dict, monkeypatch) -> tuple[dict, SpikeDetectionTrainer]:
    """The launch file's state (``trainer``, ``args``, ``model``) and a worker trainer rebuilt from it.

    The trainer takes ultralytics' DDP branch as with ``device=0,1`` (no GPUs needed); the worker is
    built as the launch file builds it, with the handed-over model set up and its arguments attached.
    """
    state = {}

    def write_launch_file(trainer):
        launch_file = generate_ddp_file(trainer)
        try:
            state.update(torch.load(Path(launch_file).with_suffix(".pt"), weights_only=False))
        finally:
            ddp_cleanup(trainer, launch_file)
        raise Launched

    monkeypatch.setattr("ultralytics.engine.trainer.generate_ddp_command", write_launch_file)
    trainer = SpikeDetectionTrainer(overrides={"model": "snn_yolov8n.yaml", **overrides}, model_overrides=model_overrides)
    trainer.ddp = True
    try:
        trainer.train()
    except Launched:
        pass
    else:
        raise AssertionError("the trainer did not take ultralytics' DDP branch")
    worker = state["trainer"](cfg={**DEFAULT_CFG_DICT, "save_dir": ""}, overrides=state["args"])  # as the launch file
    worker.model = state["model"]
    worker.setup_model()  # keeps a built model
    worker.set_model_attributes()  # attaches the arguments, as _setup_train does
    return state, worker
