"""Train SpikeYOLO: ``python train.py [model=snn_yolov8s.yaml data=coco.yaml epochs=300 ...]``."""

import sys

from spikeyolo.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
