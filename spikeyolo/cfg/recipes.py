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

# `python train.py` without data: SpikeYOLO-n on the bundled synthetic dataset in about nine
# minutes on two CPU cores (measured: mAP50 0 -> 0.048 after 8 epochs). Short from-scratch runs
# need every batch to be an optimiser step (nbs = batch; ultralytics' nbs 64 would accumulate 4
# batches), no mosaic, and ultralytics' "auto" optimiser (AdamW for short schedules). Measured
# here: with nbs 64 and mosaic, 8 epochs at 64 px left both SpikeYOLO-n (SGD or AdamW) and
# YOLOv8n (SGD) below 0.006 mAP50.
DEMO_RECIPE: dict = {
    "model": "snn_yolov8n.yaml",
    "epochs": 8,
    "imgsz": 96,
    "batch": 16,
    "nbs": 16,
    "optimizer": "auto",
    "mosaic": 0.0,
    "warmup_epochs": 1.0,
    "workers": 0,
}
