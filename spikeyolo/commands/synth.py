"""``spikeyolo synth``: write the synthetic shapes detection dataset (the bundled training data) anywhere."""

from __future__ import annotations

from ..data import DEFAULT_CLASSES, DIFFICULTIES, SUPPORTED_SHAPES, generate_dataset
from .arguments import REQUIRED, Key, describe_keys, parse_options
from .mode import Mode

KEYS = {
    "out": Key(REQUIRED, "dataset folder to create (data.yaml inside)", str),
    "n_train": Key(400, "training images", int),
    "n_val": Key(100, "validation images", int),
    "imgsz": Key(128, "image side in pixels, a multiple of 32", int),
    "seed": Key(0, "random seed (same settings and seed: identical files)", int),
    "classes": Key(",".join(DEFAULT_CLASSES), f"comma-separated shapes from {', '.join(SUPPORTED_SHAPES)}", str),
    "difficulty": Key("easy", f"{' or '.join(DIFFICULTIES)}: smooth backgrounds, or clutter and smaller objects", str),
    "overwrite": Key(False, "replace out if it holds something else", bool),
}
USAGE = f"""usage: {{prog}} out=DIR [key=value ...]

  {{prog}} out=datasets/shapes n_train=2000 imgsz=256
  {{prog}} out=datasets/shapes-hard difficulty=hard
  spikeyolo train data=datasets/shapes/data.yaml

keys:
{describe_keys(KEYS)}"""


def synth(argv: list[str]) -> int:
    """Generate (or reuse) the dataset; print its data.yaml."""
    a = parse_options(argv, KEYS)
    classes = [c.strip() for c in a["classes"].split(",") if c.strip()]
    print(generate_dataset(a["out"], n_train=a["n_train"], n_val=a["n_val"], imgsz=a["imgsz"], seed=a["seed"],
                           classes=classes, difficulty=a["difficulty"], overwrite=a["overwrite"]))
    return 0


MODE = Mode("synth", "write the synthetic shapes detection dataset (the bundled training data)", USAGE, synth)
