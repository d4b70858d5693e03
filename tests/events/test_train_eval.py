"""The Gen1 workflow end to end on synthetic recordings: train with T = 2, validate, evaluate under both
protocols with one command, predict on a raw recording with the validator's input and time order."""

import json

import numpy as np
import pytest
import yaml

from spikeyolo import SpikeYOLO
from spikeyolo.commands.train import build_train_args
from spikeyolo.commands.cli import main as cli
from spikeyolo.engine.event_evaluation import evaluate
from spikeyolo.events.labels import read_boxes
from spikeyolo.engine.event_predictor import predict_recording
from spikeyolo.engine.event_validator import EventValidator
from spikeyolo.nn.time_expansion import MS_GetT

pytestmark = pytest.mark.slow

TRAIN = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "plots": False}


@pytest.fixture(scope="module")
def trained(gen1_data, session_dir):
    """One epoch of SpikeYOLO-n (Gen1 neurons) on the converted recordings; returns (model, inputs seen in training)."""
    model = SpikeYOLO("snn_yolov8n-gen1.yaml")
    seen = []

    def watch_inputs(trainer):
        trainer.model.model[0].register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))

    model.add_callback("on_train_start", watch_inputs)
    model.train(data=str(gen1_data), project=str(session_dir / "events-runs"), name="train", exist_ok=True, **TRAIN)
    return model, seen


def test_training_feeds_time_stacks_under_the_gen1_recipe(trained):
    model, seen = trained
    args = model.trainer.args
    assert (args.optimizer, args.lr0, args.lrf, args.warmup_epochs, args.mosaic, args.fliplr) == ("SGD", 0.02, 0.004, 10.0, 0, 0)
    assert (args.epochs, args.imgsz, args.batch) == (1, 64, 8)  # the caller's arguments win over the YAML's hyp
    assert seen and seen[0] == (8, 2, 3, 64, 64)  # [B, T, 3, S, S] reaches layer 0
    assert all(len(s) == 5 and s[1:] == (2, 3, 64, 64) for s in seen)
    assert isinstance(model.trainer.validator, EventValidator)
    assert model.trainer.model.model[0].T == 2 and isinstance(model.trainer.model.model[0], MS_GetT)


def _scored_by_hand(box_files, skip_us: int, min_side: int) -> tuple[int, int]:
    """(label timestamps, boxes) the official evaluation scores: t after the skip, diagonal >= 30 and both
    sides >= min_side, in the box files' float32."""
    timestamps, boxes = 0, 0
    for box_file in box_files:
        raw = read_boxes(box_file)
        w, h = raw["w"].astype(np.float32), raw["h"].astype(np.float32)
        kept = (raw["t"] > skip_us) & (w * w + h * h >= np.float32(900)) & (w >= min_side) & (h >= min_side)
        timestamps, boxes = timestamps + len(np.unique(raw["t"][kept])), boxes + int(kept.sum())
    return timestamps, boxes


def test_evaluate_command_reports_both_protocols(trained, gen1_data, session_dir, capsys):
    model, _ = trained
    best = model.trainer.best
    run = [f"model={best}", f"data={gen1_data}", "imgsz=64", "batch=8", "workers=0", f"project={session_dir / 'events-runs'}",
           "exist_ok=True", "plots=False"]
    code = cli(["events", "evaluate", *run, "name=eval"])
    out = capsys.readouterr().out
    assert code == 0
    assert "SpikeYOLO (ultralytics, letterboxed, all boxes)" in out and "Prophesee (COCO, official toolbox, papers preset)" in out
    result = json.loads((session_dir / "events-runs" / "eval" / "protocols.json").read_text())
    data = yaml.safe_load(gen1_data.read_text())
    labels = sorted((gen1_data.parent / "labels" / "test").glob("*.txt"))
    assert result["spikeyolo"]["samples"] == len(labels)
    assert result["spikeyolo"]["gt_boxes"] == sum(len(np.loadtxt(f, ndmin=2)) for f in labels)
    # the Prophesee protocol scores every box of the recordings after the filters, one image per label timestamp
    box_files = sorted((gen1_data.parent / "boxes" / "test").glob("*_bbox.npy"))
    scored = _scored_by_hand(box_files, 500_000, 10)
    assert (result["prophesee"]["samples"], result["prophesee"]["gt_boxes"]) == scored
    assert 0 < scored[0] < len(labels)
    assert result["prophesee"]["protocol"] == {"name": "papers", "skip_us": 500_000, "min_diag": 30, "min_side": 10,
                                               "time_tol_us": 50_000}
    for r in result.values():
        assert 0.0 <= r["mAP50-95"] <= r["mAP50"] <= 1.0
    assert data["events"]["T"] == 2
    assert cli(["events", "evaluate", *run, "name=eval-toolbox", "protocol=toolbox"]) == 0
    assert "Prophesee (COCO, official toolbox, toolbox preset)" in capsys.readouterr().out
    toolbox = json.loads((session_dir / "events-runs" / "eval-toolbox" / "protocols.json").read_text())["prophesee"]
    assert (toolbox["samples"], toolbox["gt_boxes"]) == _scored_by_hand(box_files, 100_000, 20)
    assert toolbox["protocol"]["name"] == "toolbox"
    assert cli(["events", "evaluate", *run, "protocol=gen1"]) == 2
    assert "protocol=gen1 is not one of ['papers', 'toolbox']" in capsys.readouterr().err


def test_val_routes_event_data_and_matches_the_evaluation(trained, gen1_data, session_dir):
    best = SpikeYOLO(trained[0].trainer.best)
    run = {"imgsz": 64, "batch": 8, "workers": 0, "project": str(session_dir / "events-runs"), "plots": False,
           "exist_ok": True}
    metrics = best.val(data=str(gen1_data), name="val", **run)  # the stock validator would fail on [B, T, 3, S, S]
    result = evaluate(best, gen1_data, name="val2", **run)
    assert metrics.box.map50 == result.spikeyolo["mAP50"] and metrics.box.map == result.spikeyolo["mAP50-95"]


def test_prediction_on_a_recording_matches_validation(trained, gen1_data, raw_gen1, session_dir):
    model = SpikeYOLO(trained[0].trainer.best)
    run = {"imgsz": 64, "batch": 8, "workers": 0, "project": str(session_dir / "events-runs"), "plots": False,
           "exist_ok": True, "name": "val3"}
    result = evaluate(model, gen1_data, **run)
    records = [r for r in result.records if len(r.boxes)]
    assert records, "the one-epoch model should detect something at conf 0.001"
    record = records[len(records) // 2]
    name = record.file.rsplit("/", 1)[1].rsplit("_", 1)[0]
    (det,) = predict_recording(model, raw_gen1 / "test" / f"{name}_td.dat", [record.ts_us], str(gen1_data), imgsz=64,
                               conf=0.001)
    # the validator's NMS keeps several classes per box (multi_label), prediction the best one: compare the top box
    top = int(np.argmax(record.scores))
    assert len(det) and det[0, 4] == pytest.approx(record.scores[top], abs=1e-4) and int(det[0, 5]) == record.cls[top]
    np.testing.assert_allclose(det[0, :4], record.boxes[top], atol=1e-2)


def test_predict_command_writes_detections_and_names_bad_recordings(trained, raw_gen1, tmp_path, capsys):
    best = str(trained[0].trainer.best)
    recording = sorted((raw_gen1 / "test").glob("*_td.dat"))[0]
    out = tmp_path / "det.json"
    assert cli(["events", "predict", f"model={best}", f"source={recording}", "every_ms=250", "conf=0.001", f"out={out}"]) == 0
    frames = json.loads(out.read_text())["frames"]
    assert [f["t_us"] for f in frames] == [250_000, 500_000, 750_000, 1_000_000, 1_250_000]
    assert all(len(d) == 6 and 0 <= d[0] <= d[2] <= 304 and 0 <= d[1] <= d[3] <= 240 for f in frames for d in f["detections"])
    bad = tmp_path / "cut_td.dat"
    bad.write_bytes(recording.read_bytes()[:-5])
    assert cli(["events", "predict", f"model={best}", f"source={bad}"]) == 2
    assert f"{bad}: truncated" in capsys.readouterr().err


def test_train_command_leaves_event_data_to_its_own_recipe(gen1_data):
    assert build_train_args([f"data={gen1_data}"]) == {"model": "snn_yolov8s-gen1.yaml", "data": str(gen1_data)}
    assert build_train_args([f"data={gen1_data}", "model=snn_yolov8n-gen1.yaml", "batch=4"])["batch"] == 4


def test_demo_runs_the_whole_pipeline(tmp_path, capsys):
    root = tmp_path / "demo"
    args = [f"out={root}", "epochs=1", "imgsz=64", "train=2", "test=1", "seconds=1.5"]
    assert cli(["events", "demo", *args]) == 0
    out = capsys.readouterr().out
    assert "SpikeYOLO (ultralytics" in out and "Prophesee (COCO" in out and "synth_0_000_td.dat at 1.5 s:" in out
    assert (root / "train" / "weights" / "best.pt").is_file() and (root / "val" / "protocols.json").is_file()


@pytest.mark.parametrize(("args", "error"), [
    (["epochs=0"], "epochs must be 1 or more, got 0"),
    (["imgsz=100", "test=0"], "imgsz must be a positive multiple of 32, got 100; test must be 1 or more recordings, got 0"),
    (["seconds=-1"], "seconds must be positive, got -1.0"),
    (["bn_recalibrate=-8"], "bn_recalibrate must be a whole number of training batches, 0 or more"),
])
def test_demo_refuses_bad_settings_before_writing_anything(args, error, tmp_path, capsys):
    root = tmp_path / "demo"
    assert cli(["events", "demo", f"out={root}", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spikeyolo events demo: error: {error}") and err.count("\n") == 1
    assert not root.exists()
