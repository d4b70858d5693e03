"""A real (tiny) training run through train.py's entry point, then reload, validate, predict, resume, fine-tune."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikeyolo import SpikeYOLO
from spikeyolo.commands.cli import run_script
from spikeyolo.nn import SpikeDetectionModel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def trained(tiny_data, session_dir):
    """Train 2 epochs with train.py's main (imgsz 50 is rounded up to 64); keep a resumable copy of epoch 1."""
    resumable = session_dir / "epoch1.pt"

    def keep_first_epoch(trainer):
        if trainer.epoch == 0:
            shutil.copy(trainer.last, resumable)

    from spikeyolo.engine import trainer as trainer_module

    original = trainer_module.SpikeDetectionTrainer.__init__

    def init_with_callback(self, *a, **k):
        original(self, *a, **k)
        self.add_callback("on_model_save", keep_first_epoch)

    trainer_module.SpikeDetectionTrainer.__init__ = init_with_callback
    try:
        code = run_script("train", "train.py", 
            [f"data={tiny_data}", "epochs=2", "imgsz=50", "batch=8", "workers=0", "plots=False",
             "warmup_epochs=0", f"project={session_dir / 'runs'}", "name=train", "exist_ok=True"]
        )
    finally:
        trainer_module.SpikeDetectionTrainer.__init__ = original
    assert code == 0
    best = session_dir / "runs" / "train" / "weights" / "best.pt"
    assert best.is_file() and resumable.is_file()
    return best, resumable


def test_checkpoint_reloads_validates_and_predicts(trained, tiny_data, session_dir):
    best, _ = trained
    model = SpikeYOLO(best)
    assert isinstance(model.model, SpikeDetectionModel)
    assert model.model.names == {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"}
    assert model.ckpt["train_args"]["imgsz"] == 64  # 50 rounded up to the stride multiple
    metrics = model.val(data=str(tiny_data), imgsz=64, batch=4, project=str(session_dir / "runs"), name="val", plots=False)
    assert 0.0 <= metrics.box.map50 <= 1.0
    images = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))
    results = model.predict(str(images[0]), imgsz=64, conf=0.0, verbose=False)
    assert len(results) == 1 and results[0].boxes.data.shape[1] == 6 and len(results[0].boxes) > 0
    folder = model.predict(str(images[0].parent), imgsz=64, verbose=False)
    assert len(folder) == len(images)


def test_test_py_reports_map_and_firing_rates(trained, tiny_data, session_dir, capsys):
    best, _ = trained
    code = run_script("val", "test.py", [f"model={best}", f"data={tiny_data}", "imgsz=64", "batch=4",
                              f"project={session_dir / 'runs'}", "name=test", "exist_ok=True", "plots=False"])
    out = capsys.readouterr().out
    assert code == 0
    assert "mAP50 " in out and "88 neurons, mean rate" in out
    import json

    report = json.loads((session_dir / "runs" / "test" / "firing_rates.json").read_text())
    assert report["neurons"] == 88
    assert all(r["elements"] > 0 and 0.0 <= r["rate"] <= 4.0 for r in report["rates"])
    # every validation image counts once: the first neuron sees T*C*h*w elements per image; ultralytics'
    # rect validation letterboxes 64 px images to 96 px (half a stride of padding), so h = w = 96 / 4
    first = report["rates"][0]
    assert first["name"] == "model.2.Conv.lif1" and first["elements"] == 8 * 48 * 24 * 24


def test_resume_interrupted_run(trained, tiny_data, session_dir):
    _, resumable = trained
    ckpt = torch.load(resumable, weights_only=False)
    assert ckpt["epoch"] == 0 and ckpt["optimizer"] is not None
    model = SpikeYOLO(resumable)
    model.train(resume=True)
    assert model.trainer.start_epoch == 1 and model.trainer.epoch == 1


def test_fine_tune_from_checkpoint(trained, tiny_data, session_dir):
    best, _ = trained
    model = SpikeYOLO(best)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=8, workers=0, plots=False, warmup_epochs=0,
                project=str(session_dir / "runs"), name="finetune", exist_ok=True)
    tuned = SpikeYOLO(model.trainer.best).model.state_dict()
    assert tuned.keys() == before.keys()
    assert any(not torch.equal(tuned[k], before[k]) for k in before if tuned[k].is_floating_point())


def test_bf16_training_on_cpu_and_evaluation_precision(trained, tiny_data, session_dir, capsys):
    best, _ = trained
    model = SpikeYOLO(best)
    model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=8, workers=0, plots=False, warmup_epochs=0, amp="bf16",
                project=str(session_dir / "runs"), name="bf16", exist_ok=True)  # ultralytics alone refuses bf16 on CPU
    tuned = SpikeYOLO(model.trainer.best)
    assert tuned.model.precision == "bf16" and tuned.ckpt["train_args"]["amp"] == "bf16"  # resume trains in bf16 again
    metrics = tuned.val(data=str(tiny_data), imgsz=64, batch=4, amp="fp32", plots=False,
                        project=str(session_dir / "runs"), name="val-fp32")
    assert 0.0 <= metrics.box.map50 <= 1.0 and tuned.model.precision == "bf16"  # fp32 for that call only
    assert run_script("val", "test.py", [f"model={best}", "amp=True"]) == 2
    assert "precision must be one of ['fp32', 'bf16', 'fp16'], got True" in capsys.readouterr().err


def test_safe_load_in_fresh_interpreter(trained):
    best, _ = trained
    code = (
        "import spikeyolo, sys\n"
        "from spikeyolo import SpikeYOLO\n"
        f"m = SpikeYOLO({str(best)!r})\n"
        "print(type(m.model).__name__, len(m.model.names))\n"
    )
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "SpikeDetectionModel 4" in r.stdout


def test_bad_checkpoint_files_give_clear_errors(tmp_path, trained):
    best, _ = trained
    with pytest.raises(FileNotFoundError, match="not found"):
        SpikeYOLO(tmp_path / "missing.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(TypeError, match="empty"):
        SpikeYOLO(empty)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(best.read_bytes()[: best.stat().st_size // 3])
    with pytest.raises(TypeError, match="not a loadable checkpoint"):
        SpikeYOLO(truncated)
    not_ckpt = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_ckpt)
    with pytest.raises(TypeError, match="not a SpikeYOLO checkpoint"):
        SpikeYOLO(not_ckpt)
    assert best.is_file() and truncated.stat().st_size == best.stat().st_size // 3  # nothing was touched


def test_bad_dataset_gives_clear_error(tmp_path, capsys):
    bad = tmp_path / "data.yaml"
    bad.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames: {{0: a}}\n")
    assert run_script("train", "train.py", [f"data={bad}", "epochs=1", f"project={tmp_path}"]) == 2
    assert "images not found" in capsys.readouterr().err
    bad.write_text("names: [a\n")
    assert run_script("train", "train.py", [f"data={bad}", "epochs=1", f"project={tmp_path}"]) == 2


def test_test_py_refuses_bad_dataset(trained, tmp_path, capsys):
    best, _ = trained
    assert run_script("val", "test.py", [f"model={best}", f"data={tmp_path / 'none.yaml'}"]) == 2
    assert "none.yaml" in capsys.readouterr().err
