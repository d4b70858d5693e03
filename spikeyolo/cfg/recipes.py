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

# `python train.py` without data: SpikeYOLO-n on the bundled shapes (spikeyolo.data.synthetic, easy:
# 1-3 large objects of three classes on smooth backgrounds), 10 epochs in 5.4-6.1 minutes on two CPU
# cores, mAP50 0.56. Chosen by measurement (bench/demo_variants.py; every variant in
# docs/training.md): in about the same time, 16 epochs at 64 px reached mAP50 0.47 and 11 at 96 px
# 0.51; SGD with ultralytics' warm-up beat AdamW (0.26 against 0.22); mosaic, closed for the last 3
# epochs, raised 0.26 to 0.35 on four classes; lr0 0.02, no warm-up or a warm-up bias lr of 0.01 were
# worse. Every batch is an optimiser step (nbs = batch). bn_recalibrate: exact BatchNorm statistics
# on 4 training batches after each epoch (spikeyolo/engine/bn_recalibration.py), +0.03 mAP50 for
# about 2 s an epoch.
DEMO_RECIPE: dict = {
    "model": "snn_yolov8n.yaml",
    "epochs": 10,
    "imgsz": 96,
    "batch": 16,
    "nbs": 16,
    "optimizer": "SGD",
    "lr0": 0.01,
    "lrf": 0.004,
    "warmup_epochs": 3.0,
    "mosaic": 1.0,
    "close_mosaic": 3,
    "workers": 0,
    "bn_recalibrate": 4,
}
