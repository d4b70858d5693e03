"""Train SpikeYOLO: ``python train.py [model=snn_yolov8s.yaml data=coco.yaml epochs=300 ...]`` (= ``spikeyolo train``)."""

import sys

from spikeyolo.commands.cli import run_script

if __name__ == "__main__":
    sys.exit(run_script("train", "train.py"))
