"""The event-camera demo on CPU: synthetic recordings → conversion → training with T = 2 → evaluation under
both protocols → detection on a raw recording (``spikeyolo events demo``).

Every step is resumable from what the previous run left under ``root``: the recordings and the
conversion are reused, training starts afresh in ``root/train``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ultralytics.utils import LOGGER

from ..engine.event_evaluation import Evaluation, evaluate, format_table
from ..engine.event_predictor import predict_recording
from ..engine.model import SpikeYOLO
from ..events.config import read_data_yaml
from ..events.convert import convert_dataset
from ..events.synthetic import SyntheticSettings, generate_recordings
from ..nn.training_keys import check_training_setting

__all__ = ["DEMO_TRAINING", "run_demo"]

# A short from-scratch schedule (the Gen1 recipe in gen1.yaml — SGD lr0 0.02, 10 warm-up epochs —
# is for 100 epochs on the real data): every batch an optimiser step (nbs = batch), ultralytics'
# "auto" optimiser (AdamW for short runs), one warm-up epoch. Small batches give enough steps for
# the BatchNorm running statistics (momentum 0.03) to converge: measured here, after 48 steps of
# batch 16 the validation model's neurons fired 2.5 % of the time against 17 % in training, and
# every validation score was 0.
DEMO_TRAINING: dict = {
    "model": "snn_yolov8n-gen1.yaml",
    "batch": 8,
    "nbs": 8,
    "optimizer": "auto",
    "warmup_epochs": 1.0,
    "workers": 0,
    "bn_recalibrate": 8,
}


def run_demo(root: str | Path, epochs: int = 10, imgsz: int = 128, recordings: tuple[int, int] = (16, 4),
             seconds: float = 3.0, bn_recalibrate: int = DEMO_TRAINING["bn_recalibrate"]) -> Evaluation:
    """Run the whole pipeline under ``root``; prints each step's result and returns the evaluation.

    Args:
        root: working folder (``raw/``, ``gen1_T2/``, ``train/``, ``val/``).
        epochs, imgsz: training length and input size (letterboxed square, multiple of 32).
        recordings: number of (train, test) synthetic recordings, each ``seconds`` long, labelled at 4 Hz.
        bn_recalibrate: training batches the BatchNorm statistics are recalibrated on after every epoch
            (:mod:`spikeyolo.engine.bn_recalibration`); 0 keeps ultralytics' running averages.

    Raises:
        ValueError: an argument out of its range (named), before anything is written.
    """
    ranges = {  # key: (value, within its range, the range)
        "epochs": (epochs, epochs >= 1, "1 or more"),
        "imgsz": (imgsz, imgsz > 0 and imgsz % 32 == 0, "a positive multiple of 32"),
        "train": (recordings[0], recordings[0] >= 1, "1 or more recordings"),
        "test": (recordings[1], recordings[1] >= 1, "1 or more recordings"),
        "seconds": (seconds, seconds > 0, "positive"),
    }
    if problems := [f"{key} must be {rule}, got {value!r}" for key, (value, ok, rule) in ranges.items() if not ok]:
        raise ValueError("; ".join(problems))
    check_training_setting("bn_recalibrate", bn_recalibrate)
    root = Path(root).expanduser().resolve()
    started = time.perf_counter()
    settings = SyntheticSettings(duration_us=int(seconds * 1e6))
    raw = generate_recordings(root / "raw", {"train": recordings[0], "test": recordings[1]}, settings, seed=0)
    report = convert_dataset(raw, root / "gen1_T2")
    LOGGER.info(f"converted: {report.data_yaml} ({time.perf_counter() - started:.0f} s so far)")

    recipe = {**{k: v for k, v in DEMO_TRAINING.items() if k != "model"}, "bn_recalibrate": bn_recalibrate}
    model = SpikeYOLO(DEMO_TRAINING["model"])
    model.train(data=str(report.data_yaml), epochs=epochs, imgsz=imgsz, project=str(root), name="train",
                exist_ok=True, **recipe)
    best = root / "train" / "weights" / "best.pt"
    LOGGER.info(f"trained: {best} ({time.perf_counter() - started:.0f} s so far)")

    result = evaluate(SpikeYOLO(best), report.data_yaml, imgsz=imgsz, batch=recipe["batch"], workers=0,
                      project=str(root), name="val", exist_ok=True)
    print(format_table(result))

    recording = sorted((raw / "test").glob("*_td.dat"))[0]
    stamps = range(500_000, int(seconds * 1e6) + 1, 500_000)
    # a short run's scores stay low (about 0.1 to 0.2 after 10 epochs): show what it finds above 0.05
    detections = predict_recording(SpikeYOLO(best), recording, list(stamps), report.data_yaml, imgsz=imgsz, conf=0.05)
    names = read_data_yaml(report.data_yaml)["names"]
    for ts, det in zip(stamps, detections):
        found = ", ".join(f"{names[int(d[5])]} {d[4]:.2f} at x {d[0]:.0f}-{d[2]:.0f} y {d[1]:.0f}-{d[3]:.0f}" for d in det[:3])
        print(f"{recording.name} at {ts / 1e6:.1f} s: {len(det)} detection(s)" + (f": {found}" if found else ""))
    print(f"demo finished in {time.perf_counter() - started:.0f} s; results: {result.json_file}")
    return result
