#!/usr/bin/env bash
# bench/gpu.py on a bare GPU machine with no network (the device tool's H200), from the repository root:
#
#     bash bench/gpu_run.sh [gpu.py options]        # e.g. --budget 280 --ablation-budget 220
#
# Needs the wheels of what the machine's image lacks in .whl/ (carried along: ultralytics 8.4.190,
# ultralytics-thop, spikingjelly 2.0.0, loguru, SciencePlots; everything else spikeyolo imports is
# in the image, torch and numpy included). spikeyolo itself is not installed: it runs from the tree.
# Writes $OUT/gpu.log (everything printed) and $OUT/gpu.jsonl (one JSON line per result, written as
# measured, so a run killed at its time limit still leaves what it measured).
set -uo pipefail

OUT=${OUT:-/tmp/gpu-bench}
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1

ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_run.sh: no wheels in .whl/ (carry .whl)" >&2; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_run.sh: installing .whl/*.whl failed" >&2; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
# spikeyolo sets these itself before importing ultralytics (spikeyolo/utils/offline.py); set here too,
# so that nothing imported before it probes the network or pip-installs a missing package
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False YOLO_VERBOSE=False YOLO_CONFIG_DIR=/tmp/spikeyolo-config
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

{ nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,power.limit --format=csv \
    && nvidia-smi; } 2>&1 | tee "$OUT/nvidia-smi.txt"

python3 -u bench/gpu.py --json "$OUT/gpu.jsonl" "$@" 2>&1 | tee "$OUT/gpu.log"
status=${PIPESTATUS[0]}
echo "gpu_run.sh: bench/gpu.py exited with $status" | tee -a "$OUT/gpu.log"
exit "$status"
