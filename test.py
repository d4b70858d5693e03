"""Evaluate SpikeYOLO: ``python test.py model=runs/detect/train/weights/best.pt [data=...]`` (= ``spikeyolo val``)."""

import sys

from spikeyolo.commands.cli import run_script

if __name__ == "__main__":
    sys.exit(run_script("val", "test.py"))
