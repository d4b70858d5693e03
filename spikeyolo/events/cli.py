"""The event-camera commands: ``synth``, ``convert``, ``evaluate``, ``predict`` and ``demo``.

    python -m spikeyolo.events synth    --root RAW [--train 8 --test 2 --seconds 3 --seed 0]
    python -m spikeyolo.events convert  RAW OUT [--config gen1.yaml] [--kind counts] [--T 4] [--window-ms 250]
                                        [--labels clip] [--time-order newest_first] [--workers N] [--overwrite]
    python -m spikeyolo.events evaluate model=best.pt data=OUT/data.yaml [protocol=gen1] [imgsz=320 batch=16 ...]
    python -m spikeyolo.events predict  best.pt REC_td.dat [--data OUT/data.yaml] [--every-ms 50] [--conf 0.25]
    python -m spikeyolo.events demo     [--root DIR] [--epochs 10] [--imgsz 128] [--train 16 --test 4 --seconds 3]

Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .errors import EventFileError


def _synth(args: argparse.Namespace) -> int:
    from .synthetic import SyntheticSettings, generate_recordings

    settings = SyntheticSettings(duration_us=int(args.seconds * 1e6), label_hz=args.label_hz, objects=args.objects)
    root = generate_recordings(args.root, {"train": args.train, "test": args.test}, settings, args.seed, args.overwrite)
    print(root)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .config import representation_of
    from .convert import convert_dataset

    rep = representation_of(args.config)
    changes = {"kind": args.kind, "T": args.T, "time_order": args.time_order, "count_clip": args.count_clip}
    if args.window_ms is not None:
        changes["window_us"] = int(round(args.window_ms * 1000))
    rep = replace(rep, **{k: v for k, v in changes.items() if v is not None})
    report = convert_dataset(
        args.raw, args.out, config=args.config, representation=rep, label_rule=args.labels,
        splits=tuple(args.splits) if args.splits else None, val_split=args.val_split,
        workers=args.workers, overwrite=args.overwrite,
    )
    rate = report.samples / report.seconds if report.seconds else 0.0
    print(f"converted {report.converted} recording(s) ({report.reused} already done): {report.samples} samples, "
          f"{report.events:,} events in {report.seconds:.1f} s ({rate:.1f} samples/s)")
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s):")
        for file, reason in report.skipped:
            print(f"  {file}: {reason}")
    print(report.data_yaml)
    return 0


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write synthetic recordings in the Gen1 file format")
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--train", type=int, default=8, help="training recordings")
    p.add_argument("--test", type=int, default=2, help="test recordings")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each recording")
    p.add_argument("--label-hz", type=float, default=4.0, help="label frequency")
    p.add_argument("--objects", type=int, default=4, help="object crossings per recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=_synth)

    p = sub.add_parser("convert", help="convert raw recordings into a frame dataset with data.yaml")
    p.add_argument("raw", type=Path, help="folder with train/ val/ test/ of *_td.dat and *_bbox.npy")
    p.add_argument("out", type=Path, help="dataset folder to write")
    p.add_argument("--config", default="gen1.yaml", help="dataset YAML template (events, names, hyp)")
    p.add_argument("--kind", choices=("grey", "counts"), help="frame representation")
    p.add_argument("--T", type=int, help="time bins per sample")
    p.add_argument("--window-ms", type=float, help="history before each label, ms")
    p.add_argument("--count-clip", type=int, help="events per pixel at which counts saturate")
    p.add_argument("--time-order", choices=("oldest_first", "newest_first"))
    p.add_argument("--labels", choices=("reference", "clip"), help="how boxes leaving the frame are cut")
    p.add_argument("--splits", nargs="+", help="splits to convert (default: all present)")
    p.add_argument("--val-split", help="split to validate on (default test, else val)")
    p.add_argument("--workers", type=int, help="worker processes (default: all CPUs)")
    p.add_argument("--overwrite", action="store_true", help="convert again, replacing an earlier conversion")
    p.set_defaults(run=_convert)

    p = sub.add_parser("evaluate", help="mAP under the SpikeYOLO and the Prophesee protocols")
    p.add_argument("args", nargs="*", help="key=value (model=, data=, imgsz=, batch= ...)")
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("predict", help="detect objects in a raw recording (.dat) every few milliseconds")
    p.add_argument("model", help="checkpoint trained on event data")
    p.add_argument("source", type=Path, help="a *_td.dat recording")
    p.add_argument("--data", help="event dataset YAML (default: the one the model was trained on)")
    p.add_argument("--every-ms", type=float, default=50.0, help="detect every this many ms, from the first full window")
    p.add_argument("--imgsz", type=int, help="input size (default: the training size)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    p.add_argument("--out", type=Path, help="JSON file for the detections (default: next to the recording's name)")
    p.set_defaults(run=_predict)

    p = sub.add_parser("demo", help="synthetic recordings → convert → train → evaluate both protocols → predict")
    p.add_argument("--root", type=Path, default=Path("runs/events-demo"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--train", type=int, default=16, help="training recordings")
    p.add_argument("--test", type=int, default=4, help="test recordings")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each recording")
    p.set_defaults(run=_demo)
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import main as evaluate

    return evaluate(args.args)


def _predict(args: argparse.Namespace) -> int:
    from ..engine.model import SpikeYOLO
    from .config import is_event_data, representation_of
    from .dat import DatFile
    from .predict import predict_recording

    model = SpikeYOLO(args.model)
    data = args.data or model.overrides.get("data")
    if not is_event_data(data):
        raise ValueError(f"{data}: not an event dataset YAML (one with an 'events' block); pass --data")
    dat = DatFile(args.source)
    step = int(round(args.every_ms * 1000))
    if step < 1:
        raise ValueError(f"--every-ms must be positive, got {args.every_ms}")
    stamps = list(range(representation_of(data).window_us, dat.duration_us + 1, step))
    imgsz = args.imgsz or int(model.overrides.get("imgsz", 320))
    detections = predict_recording(model, dat, stamps, data, imgsz=imgsz, conf=args.conf)
    out = args.out or args.source.with_name(args.source.name.removesuffix(".dat") + "_detections.json")
    rows = [{"t_us": t, "detections": [[round(float(v), 3) for v in d[:5]] + [int(d[5])] for d in det]}
            for t, det in zip(stamps, detections)]
    out.write_text(json.dumps({"format": "x0 y0 x1 y1 (sensor px) score class", "frames": rows}))
    print(f"{args.source}: {sum(len(d) for d in detections)} detection(s) in {len(stamps)} frame(s) -> {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.root, epochs=args.epochs, imgsz=args.imgsz, recordings=(args.train, args.test), seconds=args.seconds)
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m spikeyolo.events") -> int:
    """Run one event-camera command; returns the exit code. ``prog`` names the command in messages."""
    args = _parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except (EventFileError, FileNotFoundError, FileExistsError, ValueError, TypeError) as e:
        print(f"spikeyolo events: error: {e}", file=sys.stderr)
        return 2
