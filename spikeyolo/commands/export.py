"""``spikeyolo export``: a checkpoint as TorchScript or ONNX, run by ultralytics' AutoBackend."""

from __future__ import annotations

from ..engine.model import SpikeYOLO
from .arguments import UsageError, parse_arguments
from .mode import Mode

FORMATS = ("onnx", "torchscript")  # what the spiking graph is tested to export to

USAGE = """usage: {prog} model=best.pt [format=torchscript|onnx] [key=value ...]   (any ultralytics export key)

  {prog} model=best.pt                     # best.torchscript
  {prog} model=best.pt format=onnx imgsz=640
  spikeyolo predict model=best.onnx source=images/   # exported models predict and validate as usual"""


def export(argv: list[str]) -> int:
    """Export and print the written file."""
    args = parse_arguments(argv)
    if "model" not in args:
        raise UsageError("give the model: model=path/to/best.pt")
    if str(args.setdefault("format", "torchscript")) not in FORMATS:
        raise UsageError(f"export format '{args['format']}' is not supported for spiking models; use {FORMATS}")
    print(SpikeYOLO(args.pop("model")).export(**args))
    return 0


MODE = Mode("export", "export a checkpoint to TorchScript or ONNX", USAGE, export)
