"""Resume after SIGKILL: real training processes, real signals, then ``resume=True`` from the command line.

Two kills in epoch 2 of a 3-epoch run: one from outside, at a moment set by the clock (after
epoch 1's last.pt appears), then ``spikeyolo train model=last.pt resume=True``; one from inside,
half-way through writing epoch 2's last.pt, after epoch 2's results.csv row (``TORN_WRITE``
wraps ``train.py`` and SIGKILLs itself there), then ``python train.py model=last.pt resume=True``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from spikeyolo import SpikeYOLO

ROOT = Path(__file__).resolve().parents[2]

# nbs = batch: every batch is an optimizer step (16 images, batch 8: 2 steps an epoch)
TRAIN = ["model=snn_yolov8n.yaml", "epochs=3", "imgsz=64", "batch=8", "nbs=8", "warmup_epochs=0", "plots=False",
         "exist_ok=True"]

TORN_WRITE = """
import os, runpy, signal, sys
from pathlib import Path

write_bytes, checkpoints = Path.write_bytes, []

def write_half_of_epoch_2_then_die(path, data):
    if path.name.startswith("last.pt"):
        checkpoints.append(path)
        if len(checkpoints) == 2:
            write_bytes(path, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return write_bytes(path, data)

Path.write_bytes = write_half_of_epoch_2_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, cmd)], check=False, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def epochs_in(csv: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in csv.read_text().splitlines()[1:]]


def assert_finished(run_dir: Path, first_row: str, tiny_data: Path) -> None:
    """3 rows (epoch 1's as before the kill), checkpoints final, whole and of the same run, best.pt validates."""
    csv = run_dir / "results.csv"
    assert epochs_in(csv) == [1, 2, 3]
    assert csv.read_text().splitlines()[1] == first_row
    assert sorted(p.name for p in (run_dir / "weights").iterdir()) == ["best.pt", "last.pt"]
    last = torch.load(run_dir / "weights" / "last.pt", weights_only=False)
    assert last["epoch"] == -1 and last["optimizer"] is None  # stripped at the end of the planned epochs
    assert [int(e) for e in last["train_results"]["epoch"]] == [1, 2, 3]
    args = last["train_args"]  # the run's own, not a recipe's or the bundled dataset's
    assert (args["data"], args["imgsz"], args["batch"], args["epochs"]) == (str(tiny_data), 64, 8, 3)
    best = SpikeYOLO(run_dir / "weights" / "best.pt")
    assert best.model.nc == 4
    assert 0.0 <= best.val(data=str(tiny_data), imgsz=64, batch=8, plots=False, project=str(run_dir),
                           name="val").box.map50 <= 1.0


def test_killed_in_epoch_2_resumes_with_spikeyolo_train(tiny_data, tmp_path):
    last = tmp_path / "run" / "weights" / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "spikeyolo", "train", f"data={tiny_data}", *TRAIN,
                             f"project={tmp_path}", "name=run"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # epoch 1's last.pt is in place: this lands in epoch 2
    assert proc.wait() == -signal.SIGKILL
    assert torch.load(last, weights_only=False)["epoch"] == 0
    first_row = (tmp_path / "run" / "results.csv").read_text().splitlines()[1]

    resumed = run(["-m", "spikeyolo", "train", f"model={last}", "resume=True"], tmp_path)  # no data=: the checkpoint's
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_finished(tmp_path / "run", first_row, tiny_data)


def test_killed_while_writing_last_pt_resumes_with_train_py(tiny_data, tmp_path):
    (tmp_path / "torn_write.py").write_text(TORN_WRITE)
    killed = run(["torn_write.py", ROOT / "train.py", f"data={tiny_data}", *TRAIN, f"project={tmp_path}", "name=run"],
                 tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    weights, csv = tmp_path / "run" / "weights", tmp_path / "run" / "results.csv"
    assert epochs_in(csv) == [1, 2]  # epoch 2's row was written, its checkpoint was not
    assert 0 < (weights / "last.pt.partial").stat().st_size < (weights / "last.pt").stat().st_size  # the torn write
    assert torch.load(weights / "last.pt", weights_only=False)["epoch"] == 0  # epoch 1's, whole
    first_row = csv.read_text().splitlines()[1]

    resumed = run([ROOT / "train.py", f"model={weights / 'last.pt'}", "resume=True"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_finished(tmp_path / "run", first_row, tiny_data)
