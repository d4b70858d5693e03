"""Evaluate SpikeYOLO: ``python test.py model=runs/detect/train/weights/best.pt [data=...]``."""

import sys

from spikeyolo.commands.test import main

if __name__ == "__main__":
    sys.exit(main())
