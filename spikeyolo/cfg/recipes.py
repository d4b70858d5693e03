"""Training recipes: the reference SpikeYOLO defaults and the quick CPU demo on the bundled data.

Only the values that differ from ultralytics' defaults are listed; anything a user passes wins.
"""

from __future__ import annotations

# The reference fork's cfg/default.yaml (spec §8). Its COCO runs used batch 40 over 4 GPUs and
# 300 epochs for the 23M model; ultralytics' other defaults (lr0 0.01, imgsz 640, mosaic ...) stand.
REFERENCE_RECIPE: dict = {
    "optimizer": "SGD",
    "lrf": 0.004,
    "warmup_epochs": 10.0,
    "patience": 200,
    "batch": 40,
}

# `python train.py` without data: SpikeYOLO-n on the bundled synthetic dataset, a few minutes on
# two CPU cores. Short schedules need a short warm-up.
DEMO_RECIPE: dict = {
    "model": "snn_yolov8n.yaml",
    "epochs": 12,
    "imgsz": 128,
    "batch": 16,
    "optimizer": "SGD",
    "lr0": 0.01,
    "lrf": 0.01,
    "warmup_epochs": 1.0,
    "close_mosaic": 3,
    "workers": 0,
}
