"""``spikeyolo events synth|convert|evaluate|predict|demo``: the event-camera (Prophesee Gen1) commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..engine.event_evaluation import evaluate, format_table
from ..engine.event_predictor import predict_recording
from ..engine.model import SpikeYOLO
from ..events.config import is_event_data, representation_of
from ..events.convert import convert_dataset
from ..events.dat import DatFile
from ..events.protocol import PAPERS_PROTOCOL, PROTOCOLS
from ..events.synthetic import SyntheticSettings, generate_recordings
from .arguments import REQUIRED, Key, UsageError, describe_keys, parse_arguments, parse_options
from .events_demo import DEMO_TRAINING, run_demo
from .mode import Mode

SYNTH_KEYS = {
    "out": Key(REQUIRED, "folder to write train/ and test/ recordings into", str),
    "train": Key(8, "training recordings", int),
    "test": Key(2, "test recordings", int),
    "seconds": Key(3.0, "length of each recording", float),
    "label_hz": Key(4.0, "label frequency", float),
    "objects": Key(4, "object crossings per recording", int),
    "seed": Key(0, "random seed", int),
    "overwrite": Key(False, "replace recordings written before", bool),
}
CONVERT_KEYS = {
    "source": Key(REQUIRED, "folder with train/ val/ test/ of *_td.dat and *_bbox.npy", str),
    "out": Key(REQUIRED, "dataset folder to write (data.yaml inside)", str),
    "config": Key("gen1.yaml", "dataset YAML template (events, names, hyp)", str),
    "kind": Key(None, "frame representation: grey or counts (default: the template's)", str),
    "T": Key(None, "time bins per sample", int),
    "window_ms": Key(None, "history before each label, ms", float),
    "count_clip": Key(None, "events per pixel at which counts saturate", int),
    "time_order": Key(None, "oldest_first or newest_first", str),
    "labels": Key(None, "how boxes leaving the frame are cut: reference or clip", str),
    "splits": Key(None, "splits to convert, comma-separated (default: all present)", str),
    "val_split": Key(None, "split to validate on (default test, else val)", str),
    "workers": Key(None, "worker processes (default: all CPUs)", int),
    "overwrite": Key(False, "convert again, replacing an earlier conversion", bool),
}
PREDICT_KEYS = {
    "model": Key(REQUIRED, "checkpoint trained on event data", str),
    "source": Key(REQUIRED, "a *_td.dat recording", str),
    "data": Key(None, "event dataset YAML (default: the one the model was trained on)", str),
    "every_ms": Key(50.0, "detect every this many ms, from the first full window", float),
    "imgsz": Key(None, "input size (default: the training size)", int),
    "conf": Key(0.25, "confidence threshold", float),
    "out": Key(None, "JSON file for the detections (default: next to the recording)", str),
}
DEMO_KEYS = {
    "out": Key("runs/events-demo", "working folder (raw/, gen1_T2/, train/, val/)", str),
    "epochs": Key(10, "training epochs", int),
    "imgsz": Key(128, "input size (letterboxed square, multiple of 32)", int),
    "train": Key(16, "training recordings", int),
    "test": Key(4, "test recordings", int),
    "seconds": Key(3.0, "length of each recording", float),
    "bn_recalibrate": Key(DEMO_TRAINING["bn_recalibrate"], "training batches to recalibrate BatchNorm statistics on, "
                          "every epoch (0: off)", int),
}


def synth(argv: list[str]) -> int:
    """Write synthetic recordings in the Gen1 file format; print their folder."""
    a = parse_options(argv, SYNTH_KEYS)
    settings = SyntheticSettings(duration_us=int(a["seconds"] * 1e6), label_hz=a["label_hz"], objects=a["objects"])
    print(generate_recordings(a["out"], {"train": a["train"], "test": a["test"]}, settings, a["seed"], a["overwrite"]))
    return 0


def convert(argv: list[str]) -> int:
    """Convert raw recordings into a frame dataset; print what was converted and skipped, then data.yaml."""
    a = parse_options(argv, CONVERT_KEYS)
    rep = representation_of(a["config"])
    changes = {"kind": a["kind"], "T": a["T"], "time_order": a["time_order"], "count_clip": a["count_clip"]}
    if a["window_ms"] is not None:
        changes["window_us"] = int(round(a["window_ms"] * 1000))
    rep = replace(rep, **{k: v for k, v in changes.items() if v is not None})
    splits = tuple(s.strip() for s in a["splits"].split(",") if s.strip()) if a["splits"] else None
    report = convert_dataset(
        a["source"], a["out"], config=a["config"], representation=rep, label_rule=a["labels"], splits=splits,
        val_split=a["val_split"], workers=a["workers"], overwrite=a["overwrite"],
    )
    rate = report.samples / report.seconds if report.seconds else 0.0
    print(f"converted {report.converted} recording(s) ({report.reused} already done): {report.samples} samples, "
          f"{report.events:,} events in {report.seconds:.1f} s ({rate:.1f} samples/s)")
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s):")
        for file, reason in report.skipped:
            print(f"  {file}: {reason}")
    if report.without_events:
        stamps = sum(len(ts) for _, ts in report.without_events)
        print(f"no sample for {stamps} label timestamp(s) with no events in the window before them (they stay in "
              "the Prophesee ground truth):")
        for recording, ts in report.without_events:
            shown = ", ".join(str(t) for t in ts[:5]) + (", ..." if len(ts) > 5 else "")
            print(f"  {recording}: {len(ts)} ({shown} µs)")
    print(report.data_yaml)
    return 0


def evaluate_protocols(argv: list[str]) -> int:
    """Validate on event data; print the SpikeYOLO and Prophesee protocols side by side."""
    args = parse_arguments(argv, extra_keys={"protocol": str})
    if "model" not in args:
        raise UsageError("give the checkpoint: model=path/to/best.pt")
    protocol = args.pop("protocol", PAPERS_PROTOCOL.name)
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol={protocol} is not one of {sorted(PROTOCOLS)}")
    model = SpikeYOLO(args.pop("model"))
    data = args.pop("data", None) or model.overrides.get("data")
    if not is_event_data(data):
        raise UsageError(f"data={data} is not an event dataset YAML (one with an 'events' block)")
    result = evaluate(model, data, PROTOCOLS[protocol], **args)
    print(format_table(result))
    print(f"results: {result.json_file}")
    return 0


def predict(argv: list[str]) -> int:
    """Detect objects in a raw recording every ``every_ms``; write them as JSON."""
    a = parse_options(argv, PREDICT_KEYS)
    model = SpikeYOLO(a["model"])
    data = a["data"] or model.overrides.get("data")
    if not is_event_data(data):
        raise UsageError(f"{data}: not an event dataset YAML (one with an 'events' block); give data=")
    step = int(round(a["every_ms"] * 1000))
    if step < 1:
        raise UsageError(f"every_ms must be positive, got {a['every_ms']}")
    source = Path(a["source"])
    dat = DatFile(source)
    stamps = list(range(representation_of(data).window_us, dat.duration_us + 1, step))
    imgsz = a["imgsz"] or int(model.overrides.get("imgsz", 320))
    detections = predict_recording(model, dat, stamps, data, imgsz=imgsz, conf=a["conf"])
    out = Path(a["out"]) if a["out"] else source.with_name(source.name.removesuffix(".dat") + "_detections.json")
    rows = [{"t_us": t, "detections": [[round(float(v), 3) for v in d[:5]] + [int(d[5])] for d in det]}
            for t, det in zip(stamps, detections)]
    out.write_text(json.dumps({"format": "x0 y0 x1 y1 (sensor px) score class", "frames": rows}))
    print(f"{source}: {sum(len(d) for d in detections)} detection(s) in {len(stamps)} frame(s) -> {out}")
    return 0


def demo(argv: list[str]) -> int:
    """Synthetic recordings → conversion → training → both protocols → detection on a raw recording."""
    a = parse_options(argv, DEMO_KEYS)
    run_demo(a["out"], epochs=a["epochs"], imgsz=a["imgsz"], recordings=(a["train"], a["test"]), seconds=a["seconds"],
             bn_recalibrate=a["bn_recalibrate"])
    return 0


def _usage(line: str, keys: dict[str, Key]) -> str:
    return f"usage: {{prog}} {line}\n\nkeys:\n{describe_keys(keys)}"


SUBMODES = {
    "synth": Mode("synth", "write synthetic recordings in the Gen1 file format",
                  _usage("out=raw/ [train=8 test=2 seconds=3 ...]", SYNTH_KEYS), synth),
    "convert": Mode("convert", "convert raw recordings into a frame dataset with data.yaml",
                    _usage("source=raw/ out=datasets/gen1_T2 [kind=counts T=4 window_ms=250 ...]", CONVERT_KEYS), convert),
    "evaluate": Mode("evaluate", "mAP under the SpikeYOLO and the official Prophesee protocols", """usage: {prog} \
model=best.pt data=datasets/gen1_T2/data.yaml [protocol=papers|toolbox] [key=value ...]

  {prog} model=best.pt data=datasets/gen1_T2/data.yaml imgsz=320 batch=16
  {prog} model=best.pt data=datasets/gen1_T2/data.yaml protocol=toolbox

Any ultralytics val key. The Prophesee row is the official toolbox evaluation (coco_eval, detections
matched within ±50 ms of each label time, float32 box filters) with one of two filter presets:
  papers   skip the first 0.5 s, diagonal >= 30 px, sides >= 10 px (default; what Gen1 papers report)
  toolbox  skip the first 0.1 s, diagonal >= 30 px, sides >= 20 px (psee_evaluator.py --camera GEN1)
Writes protocols.json into the validation run.""", evaluate_protocols),
    "predict": Mode("predict", "detect objects in a raw recording (.dat) every few milliseconds",
                    _usage("model=best.pt source=rec_td.dat [every_ms=50 conf=0.25 ...]", PREDICT_KEYS), predict),
    "demo": Mode("demo", "synthetic recordings → convert → train → evaluate both protocols → predict",
                 _usage("[out=runs/events-demo epochs=10 ...]", DEMO_KEYS), demo),
}
MODE = Mode("events", "event-camera data: synth, convert, evaluate, predict, demo", submodes=SUBMODES)
