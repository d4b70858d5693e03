"""Multi-GPU training: ultralytics' DDP launch file rebuilds our trainer and model in a fresh process.

``device=0,1,...`` makes ultralytics' ``BaseTrainer.train`` write a launch script plus a
cloudpickled state (trainer class, arguments, model, callbacks) with ``generate_ddp_file`` and run
it under ``torch.distributed.run``. No GPU here, so the test replaces only that method: it writes
the launch file with ultralytics' own function and runs it unchanged in a two-process
``torch.distributed.run`` world on CPU (gloo). The workers must rebuild the trainer and model from
the installed package and train them together; the parent (``train.py``) then reports their result.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch
from ultralytics.utils.dist import ddp_cleanup, find_free_network_port, generate_ddp_file

from spikeyolo import SpikeYOLO
from spikeyolo.checkpoints.restricted import pickle_globals
from spikeyolo.commands.cli import run_script
from spikeyolo.engine.trainer import SpikeDetectionTrainer
from spikeyolo.nn import SpikeDetectionModel


def test_ddp_launch_file_rebuilds_and_trains_our_trainer(tiny_data, tmp_path, monkeypatch, capsys):
    start = tmp_path / "start.pt"
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    model.names = {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"}
    torch.save({"model": model.half(), "train_args": {"imgsz": 64}}, start)
    launched = {}

    def launch_workers(trainer: SpikeDetectionTrainer) -> None:
        """BaseTrainer.train's DDP branch, with a CPU world of two processes."""
        launch_file = generate_ddp_file(trainer)
        try:
            launched["globals"] = pickle_globals(Path(launch_file).with_suffix(".pt"))
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                   "--master_port", str(find_free_network_port()), launch_file]
            launched["run"] = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=os.environ, cwd=tmp_path)
        finally:
            ddp_cleanup(trainer, launch_file)
        launched["state_removed"] = not Path(launch_file).with_suffix(".pt").exists()

    monkeypatch.setattr(SpikeDetectionTrainer, "train", launch_workers)
    code = run_script("train", "train.py", [f"model={start}", f"data={tiny_data}", "epochs=1", "imgsz=64", "batch=8", "device=cpu",
                               "plots=False", f"project={tmp_path}", "name=ddp", "exist_ok=True"])
    run = launched["run"]
    # the workers' DistributedSampler needs the process group: success means SpikeDetectionTrainer joined a world of 2
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert code == 0 and launched["state_removed"]
    # classes travel by reference (import path), so workers run the installed package's code
    assert {"spikeyolo.engine.trainer.SpikeDetectionTrainer", "spikeyolo.nn.model.SpikeDetectionModel",
            "spikeyolo.nn.neuron.ILIF"} <= launched["globals"]
    assert "mAP50 " in capsys.readouterr().out  # the parent reports the metrics the workers recorded

    trained = SpikeYOLO(tmp_path / "ddp" / "weights" / "last.pt")
    assert isinstance(trained.model, SpikeDetectionModel) and trained.model.names == model.names
    assert trained.ckpt["train_args"]["imgsz"] == 64 and trained.ckpt["train_args"]["batch"] == 8
    before, after = model.float().state_dict(), trained.model.float().state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())  # it trained
