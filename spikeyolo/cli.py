"""The ``spikeyolo`` command: ``spikeyolo MODE key=value ...``, the grammar of ultralytics' ``yolo``.

Modes: train, val (mAP + firing rates, as test.py), predict, export, convert (reference
checkpoint → this package's format), audit (spike-driven operation audit), energy (firing
rates, synaptic operations and energy per layer), events (Prophesee Gen1 data, as
``python -m spikeyolo.events``), help.
"""

from __future__ import annotations

import difflib
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

HELP = """usage: spikeyolo MODE [key=value ...]

  spikeyolo train   model=snn_yolov8s.yaml data=coco.yaml epochs=300 imgsz=640 batch=40
  spikeyolo train   model=snn_yolov8s.yaml data=coco.yaml device=0,1,2,3 batch=40  # DDP: 10 images per GPU
  spikeyolo val     model=best.pt data=data.yaml                 # mAP + per-neuron firing rates
  spikeyolo predict model=best.pt source=images/ [spike_driven=True]  # or image.jpg, video.mp4, 0 (webcam)
  spikeyolo val     model=best.pt amp=bf16                       # bfloat16 autocast (also train, predict)
  spikeyolo export  model=best.pt format=onnx                    # onnx or torchscript
  spikeyolo convert 23M_best.pt spikeyolo_s.pt [--overwrite]     # a released reference checkpoint
  spikeyolo audit   snn_yolov8s.yaml --imgsz 640 [--images DIR] [--json FILE]
  spikeyolo energy  model=best.pt source=images/ imgsz=640 [energy_preset=fp32|fp16|int8]
  spikeyolo energy  model=best.pt data=data.yaml             # mAP too, as test.py energy=True
  spikeyolo energy  template=power_cal.json model=snn_yolov8s.yaml   # the reference spreadsheet
  spikeyolo events  convert gen1/ datasets/gen1_T2              # Gen1 event data: synth, convert,
  spikeyolo events  evaluate model=best.pt data=datasets/gen1_T2/data.yaml  # evaluate, predict, demo
  spikeyolo help

Keys are ultralytics' (https://docs.ultralytics.com/usage/cfg/); train without data= uses the
bundled synthetic dataset and a quick CPU recipe, with data= the reference SpikeYOLO recipe."""

MODES = ("train", "val", "predict", "export", "convert", "audit", "energy", "events", "help")
EXPORT_FORMATS = ("onnx", "torchscript")  # what the spiking graph is tested to export to


def _error(message: str) -> int:
    print(f"spikeyolo: error: {message}", file=sys.stderr)
    return 2


def _predict_or_export(mode: str, argv: Sequence[str]) -> int:
    from .commands.arguments import UsageError, parse_arguments
    from .engine.model import SpikeYOLO
    from .nn.precision import check_precision

    try:
        args = parse_arguments(argv, extra_keys=("spike_driven",) if mode == "predict" else ())
        if "model" not in args:
            raise UsageError(f"give the model: spikeyolo {mode} model=path/to/best.pt")
        if mode == "predict":
            source = str(args.get("source", ""))
            if not source:
                raise UsageError("give the input: source=image.jpg | folder/ | video.mp4 | 0 (webcam)")
            if not source.isdigit() and "://" not in source and not Path(source).exists():
                raise FileNotFoundError(f"source '{source}' not found")
            if "amp" in args:
                args["amp"] = check_precision(args["amp"])
        elif str(args.setdefault("format", "torchscript")) not in EXPORT_FORMATS:
            raise UsageError(f"export format '{args['format']}' is not supported for spiking models; use {EXPORT_FORMATS}")
        model = SpikeYOLO(args.pop("model"))
    except (UsageError, FileNotFoundError, ValueError, TypeError, pickle.UnpicklingError) as e:
        return _error(str(e))
    if mode == "export":
        print(model.export(**args))
        return 0
    try:
        # Under the console script ultralytics sees argv[0] ending in "yolo" and predicts as `yolo
        # predict` does: save=True by default, results streamed rather than kept (webcams, long videos).
        model.predict(**args)
    except ConnectionError:
        return _error(f"cannot open source '{args['source']}': no camera at that index, or the stream is unreachable")
    except FileNotFoundError as e:  # e.g. a folder without images or videos
        return _error(str(e))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeyolo`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("help", "-h", "--help"):
        print(HELP)
        return 0
    mode, rest = argv[0], argv[1:]
    if mode not in MODES:
        close = difflib.get_close_matches(mode, MODES, n=1)
        return _error(f"unknown mode '{mode}'" + (f"; did you mean '{close[0]}'?" if close else f"; modes: {', '.join(MODES)}"))
    if mode == "train":
        from .commands.train import main as train
        return train(rest, prog="spikeyolo train")
    if mode == "val":
        from .commands.test import main as validate
        return validate(rest, prog="spikeyolo val")
    if mode == "convert":
        from .checkpoints.__main__ import main as checkpoints
        return checkpoints(["convert", *rest])
    if mode == "energy":
        from .commands.energy import main as energy
        return energy(rest)
    if mode == "events":
        from .events.cli import main as events
        return events(rest, prog="spikeyolo events")
    if mode == "audit":
        from .spike.audit import main as audit
        return audit(rest)
    return _predict_or_export(mode, rest)


if __name__ == "__main__":
    sys.exit(main())
