"""bench/gpu.py, the GPU benchmark prepared for a one-shot run: its whole code path on a CPU, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.py"


def _run(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_cpu_run_prints_both_models_side_by_side_and_json_lines(tmp_path):
    out = tmp_path / "gpu.jsonl"
    r = _run(
        "--device",
        "cpu",
        "--imgsz",
        "64",
        "--batch",
        "2",
        "--scales",
        "n",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--infer-batches",
        "1",
        "2",
        "--threads",
        "2",
        "--json",
        str(out),
        timeout=240,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    for measure in (
        "train step, batch 2, fp32",
        "train step, batch 2, bf16",
        "inference, batch 1, fp32",
        "inference, batch 2, fp32",
    ):
        rows = [line for line in r.stdout.splitlines() if line.startswith(f"| {measure}")]
        assert len(rows) == 2, measure  # printed when measured, and again in the summary
        spike, stock = (float(c.split(";")[0]) for c in _cells(rows[-1])[1:3])  # SpikeYOLO | YOLOv8 columns
        assert spike > 0 and stock > 0
    assert "| first call incl. cuDNN autotuning (s) | SpikeYOLO n | YOLOv8 n |" in r.stdout
    assert "fp16" not in r.stdout.split("# Summary")[1]  # no fp16 rows on a CPU

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["section"] == "env" and records[0]["torch"] == torch.__version__
    timed = [x for x in records if x.get("section") == "main" and x.get("measure") in ("train", "infer")]
    assert {(x["model"], x["measure"], x["precision"]) for x in timed} == {
        (m, "train", p) for m in ("spikeyolo", "yolov8") for p in ("fp32", "bf16")
    } | {(m, "infer", "fp32") for m in ("spikeyolo", "yolov8")}
    assert all(x["status"] == "ok" and x["median_ms"] > 0 and x["first_ms"] > 0 and x["n"] == 1 for x in timed)
    assert all(x["images_per_s"] > 0 for x in timed if x["measure"] == "infer")


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("gpu.py: error:")]
    assert len(errors) == 1 and r.stdout == "", r.stderr
    return errors[0]


def test_unknown_device_is_a_one_line_error():
    assert _one_line_error(_run("--device", "nonsense", timeout=120)) == (
        "gpu.py: error: unknown device 'nonsense' (use cpu or cuda[:N])"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_one_line_error():
    error = _one_line_error(_run("--device", "cuda", timeout=120))
    assert error.startswith("gpu.py: error: --device cuda: CUDA is not available here")


def test_cpu_run_of_the_ablations_fills_every_variant_row():
    """The variants of the CUDA path (layouts, saved counts, neurons) run on a CPU too; only the
    CUDA-only ones (child processes for cuDNN settings, the profile, CUDA graphs) and the whole-model
    compile (minutes of inductor on a CPU) are left out."""
    r = _run("--device", "cpu", "--imgsz", "64", "--batch", "2", "--scales", "n", "--models", "spikeyolo",
             "--precisions", "fp32", "--infer-batches", "2", "--repeats", "1", "--warmup", "0", "--threads", "2",
             "--ablations", "--ablation-budget", "400", "--variant-limit", "90", "--no-profile", "--no-compile-model",
             timeout=480)  # budgets far above the ~20 s the variants take: no row may be skipped on a slow machine
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout[-2000:] + r.stderr[-3000:]
    rows = {_cells(line)[0]: _cells(line) for line in r.stdout.split("# Summary")[1].splitlines()
            if line.startswith("| ")}
    for variant in ("baseline (main table)", "depthwise 7×7 channels-last in fp32 training",
                    "counts kept as fp32 (uint8 off)", "channels-first layout", "neuron compiled (clamp+round+mask)",
                    "neuron from spikingjelly (ilif_multi_step)"):
        assert float(rows[variant][1]) > 0, rows.get(variant)  # train fp32 ms
    assert rows["baseline (main table)"][-1].startswith("channels-last, depthwise 7×7 channels-last in fp32 training")
