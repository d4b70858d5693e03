"""``spikeyolo convert`` (a released reference checkpoint into this package's format) and ``spikeyolo info``."""

from __future__ import annotations

from ..checkpoints import convert_reference_checkpoint, is_reference_checkpoint, load_reference_checkpoint
from ..engine.model import SpikeYOLO
from ..nn.neuron import ILIF
from ..nn.training_keys import TRAINING_KEYS, training_setting
from .arguments import REQUIRED, Key, describe_keys, parse_options
from .mode import Mode

CONVERT_KEYS = {
    "model": Key(REQUIRED, "a released reference checkpoint (e.g. 23M_best.pt)", str),
    "out": Key(REQUIRED, "the checkpoint to write", str),
    "overwrite": Key(False, "replace out if it exists", bool),
}
CONVERT_USAGE = f"""usage: {{prog}} model=REFERENCE.pt out=NEW.pt [overwrite=True]

  {{prog}} model=23M_best.pt out=spikeyolo_s.pt   # then SpikeYOLO("spikeyolo_s.pt"), or any mode with model=

The reference file is read through a restricted unpickler (nothing in it is executed) and never modified.

keys:
{describe_keys(CONVERT_KEYS)}"""

INFO_KEYS = {"model": Key(REQUIRED, "a checkpoint: trained here, converted, or a released reference one", str)}
INFO_USAGE = f"""usage: {{prog}} model=CHECKPOINT.pt

  {{prog}} model=runs/detect/train/weights/best.pt   # architecture, classes, training run and metrics
  {{prog}} model=23M_best.pt                         # a released reference checkpoint, without building it

keys:
{describe_keys(INFO_KEYS)}"""


def convert(argv: list[str]) -> int:
    """Write the converted checkpoint and print its path."""
    args = parse_options(argv, CONVERT_KEYS)
    print(convert_reference_checkpoint(args["model"], args["out"], overwrite=args["overwrite"]))
    return 0


def _reference_info(path: str) -> str:
    ref = load_reference_checkpoint(path)
    layer25 = "[2, 7] (release)" if ref.release_layer25 else "[1, 7] (as shipped)"
    return (f"{path}: reference {ref.family} SpikeYOLO-{ref.scale}, {ref.nc} classes, {ref.form} form, "
            f"layer 25 {layer25}, {len(ref.state_dict)} tensors")


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _info(path: str) -> str:
    model = SpikeYOLO(path)
    net, ckpt = model.model, model.ckpt or {}
    neuron = next(m for m in net.modules() if isinstance(m, ILIF))
    args = ckpt.get("train_args") or {}
    lines = [
        f"{path}: SpikeYOLO-{net.yaml.get('scale') or '?'} ({net.yaml.get('yaml_file', '?')}), "
        f"{sum(p.numel() for p in net.parameters()):,} parameters, {'fused' if net.is_fused() else 'unfused'}",
        f"classes ({len(net.names)}): {', '.join(net.names.values())}",
        f"neurons: I-LIF D={neuron.max_count}, decay {neuron.decay}, input scale {neuron.input_scale}, "
        f"T={net.model[0].T} for images",
        ", ".join(f"{key}: {_shown(training_setting(net.yaml, key))}" for key in TRAINING_KEYS)
        + f", precision: {net.precision}",
    ]
    if args:
        lines.append(f"trained: data={args.get('data')} epochs={args.get('epochs')} imgsz={args.get('imgsz')} "
                     f"batch={args.get('batch')} (epoch {ckpt.get('epoch')}, {ckpt.get('date', 'no date')}, "
                     f"ultralytics {ckpt.get('version', '?')})")
    if ckpt.get("converted_from"):
        lines.append(f"converted from: {ckpt['converted_from']}")
    if metrics := ckpt.get("train_metrics"):
        lines.append("metrics: " + ", ".join(f"{k} {float(v):.4f}" for k, v in metrics.items() if "mAP" in k))
    return "\n".join(lines)


def info(argv: list[str]) -> int:
    """Print what a checkpoint holds."""
    path = parse_options(argv, INFO_KEYS)["model"]
    print(_reference_info(path) if is_reference_checkpoint(path) else _info(path))
    return 0


CONVERT = Mode("convert", "a released reference checkpoint into this package's format", CONVERT_USAGE, convert)
INFO = Mode("info", "what a checkpoint holds (trained here, converted, or a reference one)", INFO_USAGE, info)
