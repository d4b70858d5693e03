"""Distributed training for real: torchrun worlds of 2 CPU processes (gloo) on 127.0.0.1.

Each world runs the real command (``-m spikeyolo train`` or ``train.py``) under a small wrapper
(``WORKER``) that adds two test callbacks through ultralytics' default callbacks: after every
epoch (and after the final validation) each rank saves its model, EMA and step count to
``rank{RANK}.pt`` in its working directory; ``FAIL_RANK`` makes that rank fail at its second
batch, by SIGKILL or by raising an error (``FAIL_HOW``). Nothing is changed in the code under test.
"""

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from ultralytics.cfg import get_cfg
from ultralytics.utils.dist import find_free_network_port

from spikeyolo import SpikeYOLO
from spikeyolo.engine.trainer import check_global_batch
from spikeyolo.nn import SpikeDetectionModel

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import os, runpy, signal, sys
import torch
from ultralytics.utils import RANK
from ultralytics.utils.callbacks.base import default_callbacks
from ultralytics.utils.torch_utils import unwrap_model

def save_state(trainer):
    state = {f"model.{k}": v for k, v in unwrap_model(trainer.model).state_dict().items()}
    state.update({f"ema.{k}": v for k, v in trainer.ema.ema.state_dict().items()})
    torch.save({"state": state, "updates": trainer.ema.updates, "world_size": trainer.world_size}, f"rank{RANK}.pt")

batches = []
def fail_at_second_batch(trainer):
    batches.append(1)
    if RANK == int(os.environ.get("FAIL_RANK", -1)) and len(batches) == 2:
        if os.environ["FAIL_HOW"] == "raise":
            raise RuntimeError("injected failure")
        os.kill(os.getpid(), signal.SIGKILL)

default_callbacks["on_fit_epoch_end"].append(save_state)
default_callbacks["on_train_batch_start"].append(fail_at_second_batch)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""

# nbs = batch: every batch is an optimizer step (16 images, global batch 8: 2 steps an epoch)
TRAIN = ["model=snn_yolov8n.yaml", "imgsz=64", "batch=8", "nbs=8", "warmup_epochs=0", "plots=False", "exist_ok=True"]


def torchrun_command(args: list) -> list:
    return [sys.executable, "-m", "torch.distributed.run", *map(str, args)]


def torchrun(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run ARGS`` in ``cwd``, finished."""
    return subprocess.run(torchrun_command(args), check=False, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def two_nodes(args: list, cwd: Path, timeout: float = 300, env: dict | None = None) -> list:
    """Two torchrun launchers of one process each, nodes 0 and 1 of a world meeting at 127.0.0.1, in cwd/node0, node1.

    Their output goes to files: a launcher blocked on a full pipe would stall the other's collectives.
    """
    port = find_free_network_port()
    common = ["--nnodes", 2, "--nproc_per_node", 1, "--master_addr", "127.0.0.1", "--master_port", port]
    nodes = []
    for n in (0, 1):
        with open(cwd / f"node{n}" / "stdout.txt", "w") as out, open(cwd / f"node{n}" / "stderr.txt", "w") as err:
            nodes.append(subprocess.Popen(torchrun_command(["--node_rank", n, *common, *args]), cwd=cwd / f"node{n}",
                                          env={**os.environ, **(env or {})}, stdout=out, stderr=err))
    codes = [node.wait(timeout=timeout) for node in nodes]
    return [subprocess.CompletedProcess(node.args, code, *((cwd / f"node{n}" / f).read_text() for f in ("stdout.txt", "stderr.txt")))
            for n, (node, code) in enumerate(zip(nodes, codes))]


def assert_same_weights_everywhere(rank0: Path, rank1: Path, steps: int, run: Path) -> dict:
    """Both ranks hold bit-identical parameters, BN buffers and EMA after ``steps`` steps; rank 0's last.pt has them."""
    a, b = torch.load(rank0), torch.load(rank1)
    assert a["world_size"] == b["world_size"] == 2
    assert a["updates"] == b["updates"] == steps
    assert a["state"].keys() == b["state"].keys()
    differ = [k for k in a["state"] if not torch.equal(a["state"][k], b["state"][k])]
    assert not differ, differ[:5]
    assert any("running_var" in k for k in a["state"])  # BN buffers are among them
    last = SpikeYOLO(run / "weights" / "last.pt").model.state_dict()  # EMA, saved in fp16
    ema = {k[4:]: v for k, v in a["state"].items() if k.startswith("ema.")}
    assert all(torch.equal(last[k], ema[k].half().float()) for k in last if last[k].is_floating_point())
    return a


def assert_one_row_per_epoch(run: Path, epochs: int) -> None:
    lines = (run / "results.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(1, epochs + 1))
    losses = [float(r[header.index("train/box_loss")]) for r in rows]
    assert all(math.isfinite(x) and x > 0 for x in losses)
    assert sorted(p.name for p in (run / "weights").iterdir()) == ["best.pt", "last.pt"]  # nothing partial left


def test_one_node_two_processes_train_as_one(tiny_data, tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    port = find_free_network_port()
    run = torchrun(["--nnodes", 1, "--nproc_per_node", 2, "--master_addr", "127.0.0.1", "--master_port", port,
                    "worker.py", "spikeyolo", "train", f"data={tiny_data}", "epochs=2", *TRAIN,
                    f"project={tmp_path}", "name=one"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("weights: ") == 1 and "mAP50 " in run.stdout  # rank 0 alone reports
    assert_same_weights_everywhere(tmp_path / "rank0.pt", tmp_path / "rank1.pt", steps=4, run=tmp_path / "one")
    assert_one_row_per_epoch(tmp_path / "one", epochs=2)
    metrics = SpikeYOLO(tmp_path / "one" / "weights" / "best.pt").val(
        data=str(tiny_data), imgsz=64, batch=8, plots=False, project=str(tmp_path), name="val")
    assert 0.0 <= metrics.box.map50 <= 1.0


def test_two_nodes_of_one_process_with_train_py(tiny_data, tmp_path):
    for node in (0, 1):
        (tmp_path / f"node{node}").mkdir()
        (tmp_path / f"node{node}" / "worker.py").write_text(WORKER)
    runs = two_nodes(["worker.py", ROOT / "train.py", f"data={tiny_data}", "epochs=1", *TRAIN,
                      f"project={tmp_path}", "name=two"], tmp_path)
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    assert "weights: " in runs[0].stdout and "weights: " not in runs[1].stdout
    assert_same_weights_everywhere(tmp_path / "node0" / "rank0.pt", tmp_path / "node1" / "rank1.pt", steps=2,
                                   run=tmp_path / "two")
    assert_one_row_per_epoch(tmp_path / "two", epochs=1)
    assert SpikeYOLO(tmp_path / "two" / "weights" / "best.pt").val(
        data=str(tiny_data), imgsz=64, batch=8, plots=False, project=str(tmp_path), name="val").box.map50 >= 0.0


GRADIENT_WORKER = """
import sys
import torch
import torch.distributed as dist
from torch import nn

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
case = torch.load(sys.argv[1], weights_only=False)
model = case["model"].train()
for m in model.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.eval()
ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True, broadcast_buffers=False)  # as ultralytics
batch = case["shares"][rank]
(model.loss(batch, ddp(batch["img"]))[0].sum() * world).backward()  # ultralytics' trainer scales a rank's loss so
torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, f"grad{rank}.pt")
dist.destroy_process_group()
"""


def _share(batch: dict, images: slice) -> dict:
    keep = (batch["batch_idx"] >= images.start) & (batch["batch_idx"] < images.stop)
    return {"img": batch["img"][images], "batch_idx": batch["batch_idx"][keep] - images.start,
            "cls": batch["cls"][keep], "bboxes": batch["bboxes"][keep]}


def test_two_processes_of_batch_b_step_as_one_of_batch_2b(tmp_path):
    """One DDP step over 2 ranks of 4 images = one step of one process over the 8 images, same objective.

    BatchNorm runs on its running statistics (eval mode), so per-rank batch statistics do not
    enter: torch's SyncBatchNorm, which would share them, refuses CPU tensors. The objective is
    the one ultralytics' DDP optimises, each rank's loss normalised over its own images; the
    single process takes one forward pass over all 8 and sums the two shares' losses.
    """
    torch.manual_seed(0)
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    model.args = get_cfg()  # the loss's hyperparameters, as the trainer sets them
    for name, p in model.named_parameters():
        p.requires_grad = ".dfl" not in name  # frozen by ultralytics' trainer
    g = torch.Generator().manual_seed(1)
    b, boxes = 4, 3
    batch = {"img": torch.rand(2 * b, 3, 64, 64, generator=g),
             "batch_idx": torch.arange(2 * b).repeat_interleave(boxes).float(),
             "cls": torch.randint(0, 4, (2 * b * boxes, 1), generator=g).float(),
             "bboxes": torch.cat([torch.rand(2 * b * boxes, 2, generator=g) * 0.6 + 0.2,
                                  torch.rand(2 * b * boxes, 2, generator=g) * 0.3 + 0.1], 1)}
    shares = [_share(batch, slice(0, b)), _share(batch, slice(b, 2 * b))]
    torch.save({"model": model, "shares": shares}, tmp_path / "case.pt")
    (tmp_path / "worker.py").write_text(GRADIENT_WORKER)
    run = torchrun(["--nnodes", 1, "--nproc_per_node", 2, "--master_addr", "127.0.0.1",
                    "--master_port", find_free_network_port(), "worker.py", "case.pt"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"grad{r}.pt") for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])  # the all-reduce gave both the same

    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    preds = model(batch["img"])
    loss = sum(model.loss(share, {"boxes": preds["boxes"][i * b:(i + 1) * b], "scores": preds["scores"][i * b:(i + 1) * b],
                                  "feats": [f[i * b:(i + 1) * b] for f in preds["feats"]]})[0].sum()
               for i, share in enumerate(shares))
    loss.backward()
    single = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert single.keys() == ranks[0].keys() and len(single) > 100
    scale = max(g.abs().max().item() for g in single.values())
    worst = max((ranks[0][k] - single[k]).abs().max().item() for k in single)
    assert scale > 1e-3 and worst <= 1e-6 * scale, (worst, scale)  # measured: 6.0e-8 against 0.36


def test_batch_not_divisible_by_the_world_is_refused(tiny_data, tmp_path):
    check_global_batch(40, 4)  # 10 images per process
    with pytest.raises(ValueError, match=r"batch=10 is the global batch .* world size 4 .* batch=8 or batch=12"):
        check_global_batch(10, 4)
    run = torchrun(["--nnodes", 1, "--nproc_per_node", 2, "--master_addr", "127.0.0.1",
                    "--master_port", find_free_network_port(), "-m", "spikeyolo", "train", f"data={tiny_data}",
                    "model=snn_yolov8n.yaml", "epochs=1", "imgsz=64", "batch=7", f"project={tmp_path}"], tmp_path)
    assert run.returncode != 0
    assert "error: batch=7 is the global batch and must be divisible by the world size 2" in run.stderr


def test_world_that_never_assembles_times_out(tiny_data, tmp_path):
    """Node 0 of 2 alone: torchrun's rendezvous (before any worker) and, without torchrun, our own join time out."""
    start = time.monotonic()
    run = torchrun(["--nnodes", 2, "--node_rank", 0, "--nproc_per_node", 1, "--master_addr", "127.0.0.1",
                    "--master_port", find_free_network_port(), "--rdzv-conf", "timeout=3",
                    "-m", "spikeyolo", "train", f"data={tiny_data}"], tmp_path, timeout=60)
    assert run.returncode != 0 and time.monotonic() - start < 60
    assert "waiting for clients. 1/2 clients joined" in run.stderr

    port = find_free_network_port()
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "SPIKEYOLO_DDP_TIMEOUT": "3"}
    run = subprocess.run([sys.executable, "-m", "spikeyolo", "train", f"data={tiny_data}", "model=snn_yolov8n.yaml",
                          "epochs=1", "imgsz=64", "batch=8", f"project={tmp_path}"],
                         check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"error: rank 0 of 2 could not join the others at 127.0.0.1:{port} within 3 s" in run.stderr


@pytest.mark.parametrize("how", ["kill", "raise"])
def test_failed_rank_is_named_on_the_other_node(tiny_data, tmp_path, how):
    for node in (0, 1):
        (tmp_path / f"node{node}").mkdir()
        (tmp_path / f"node{node}" / "worker.py").write_text(WORKER)
    start = time.monotonic()
    runs = two_nodes(["worker.py", "spikeyolo", "train", f"data={tiny_data}", "epochs=2", *TRAIN,
                      f"project={tmp_path}", "name=failed"], tmp_path, env={"FAIL_RANK": "1", "FAIL_HOW": how})
    assert time.monotonic() - start < 240
    assert runs[0].returncode != 0 and runs[1].returncode != 0
    if how == "kill":
        assert re.search(r"rank +: 1 \(local_rank: 0\)\n +exitcode +: -9 .*\(SIGKILL\)", runs[1].stderr)  # torchrun
        assert "rank 0: training stopped because rank(s) 1 stopped without an error" in runs[0].stderr  # ours
    else:
        assert "RuntimeError: injected failure" in runs[1].stderr
        assert "rank 0: training stopped because rank 1 failed: RuntimeError: injected failure" in runs[0].stderr
