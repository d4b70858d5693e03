"""``spikeyolo audit``: every operation of a spike-driven run that is not an addition on a binary spike."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..analysis.image_rates import list_images, load_letterboxed
from ..engine.model import SpikeYOLO
from ..spike.audit import audit as audit_operations
from ..spike.audit import format_table, summarise
from .arguments import REQUIRED, Key, describe_keys, parse_options
from .mode import Mode

KEYS = {
    "model": Key(REQUIRED, "model YAML (snn_yolov8s.yaml) or checkpoint"),
    "imgsz": Key(640, "square input size in pixels", int),
    "source": Key(None, "folder (or file) of images to audit on; default: one random image", str),
    "json": Key(None, "also write the rows and totals to this JSON file", str),
}
USAGE = f"""usage: {{prog}} model=... [key=value ...]

  {{prog}} model=snn_yolov8s.yaml imgsz=640
  {{prog}} model=best.pt source=images/ json=audit.json

keys:
{describe_keys(KEYS)}"""


def _images(source: str, imgsz: int) -> torch.Tensor:
    """Letterboxed images ``[B, 3, imgsz, imgsz]`` in [0, 1] from a folder (unreadable ones are refused)."""
    images, unreadable = load_letterboxed(list_images(source), imgsz)
    if unreadable:
        raise ValueError(f"cannot read {len(unreadable)} image(s): {', '.join(unreadable)}")
    return images


def audit(argv: list[str]) -> int:
    """Print the per-layer operation counts, totals and the spike-driven share."""
    args = parse_options(argv, KEYS)
    model = SpikeYOLO(args["model"]).model
    imgsz = args["imgsz"]
    images = _images(args["source"], imgsz) if args["source"] else torch.rand(1, 3, imgsz, imgsz)
    rows = audit_operations(model, images)
    print(format_table(rows))
    if args["json"]:
        Path(args["json"]).write_text(json.dumps({"rows": [asdict(r) for r in rows], **summarise(rows)}, indent=1))
    return 0


MODE = Mode("audit", "count every operation of a spike-driven run that is not an addition on a spike", USAGE, audit)
