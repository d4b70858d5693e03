"""The spikeyolo console command: modes, key=value grammar, clear errors, end to end on a tiny model."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, SegmentationModel

from spikeyolo import SpikeYOLO
from spikeyolo.commands.cli import MODES, main


def test_help_and_console_script():
    script = shutil.which("spikeyolo", path=str(Path(sys.executable).parent))
    assert script, "the spikeyolo console script is installed with the package"
    r = subprocess.run([script, "help"], capture_output=True, text=True, timeout=120, env=os.environ)
    assert r.returncode == 0 and "usage: spikeyolo MODE [key=value ...]" in r.stdout
    assert all(f"\n  {name} " in r.stdout for name in MODES)
    r = subprocess.run([sys.executable, "-m", "spikeyolo", "predict", "--help"], capture_output=True, text=True,
                       timeout=120, env=os.environ)
    assert r.returncode == 0 and "usage: spikeyolo predict model=best.pt source=..." in r.stdout


def _every_mode(modes, prog):
    for name, mode in modes.items():
        if mode.submodes:
            yield from _every_mode(mode.submodes, f"{prog} {name}")
        else:
            yield f"{prog} {name}".split()[1:]


@pytest.mark.parametrize("words", list(_every_mode(MODES, "spikeyolo")), ids=" ".join)
@pytest.mark.parametrize("flag", ["help", "--help", "-h"])
def test_every_mode_answers_help(words, flag, capsys):
    assert main([*words, flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: spikeyolo {' '.join(words)} ") and "{prog}" not in out


def test_info_describes_our_checkpoints(checkpoint, capsys):
    assert main(["info", f"model={checkpoint}"]) == 0
    out = capsys.readouterr().out
    assert "SpikeYOLO-n" in out and "classes (4): circle, rectangle, triangle, cross" in out
    assert "I-LIF D=4, decay 0.25" in out and "criterion: ultralytics, spike_budget: 0, bn_recalibrate: 0, precision: fp32" in out and "imgsz=64" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trian"], "did you mean 'train'"),
        (["val", "model=x.pt", "epoch=3"], "spikeyolo val: error: unknown key 'epoch' (did you mean 'epochs'?)"),
        (["val", "model=x.pt", "amp=int8"], "spikeyolo val: error: precision must be one of"),
        (["train", "epoch=3"], "spikeyolo train: error: unknown key 'epoch'"),
        (["predict", "source=img.jpg"], "give the model"),
        (["predict", "model=x.pt", "sourc=img.jpg"], "did you mean 'source'"),
        (["export", "format=engine", "model=x.pt"], "not supported for spiking models"),
        (["convert", "model=missing.pt", "out=out.pt"], "spikeyolo convert: error: "),
        (["convert", "missing.pt", "out.pt"], "argument 'missing.pt' is not of the form key=value"),
        (["convert", "model=a.pt"], "give out=... (the checkpoint to write)"),
        (["audit", "model=snn_yolov8n.yaml", "imgsz=big"], "imgsz='big': expected a int"),
        (["audit", "modl=snn_yolov8n.yaml"], "unknown key 'modl' (did you mean 'model'?)"),
        (["events", "convrt"], "spikeyolo events: error: unknown mode 'convrt'; did you mean 'convert'?"),
        (["events", "synth", "out=x", "overwrite=maybe"], "overwrite='maybe': expected True or False"),
        (["info"], "spikeyolo info: error: give model=..."),
    ],
)
def test_user_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_predict_missing_source(checkpoint, tmp_path, capsys):
    assert main(["predict", f"model={checkpoint}", f"source={tmp_path / 'none.jpg'}"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["predict", f"model={checkpoint}", f"source={tmp_path}"]) == 2  # a folder without images
    assert "No images or videos found" in capsys.readouterr().err
    assert main(["predict", f"model={checkpoint}", "source=9"]) == 2  # a webcam index with no camera behind it
    assert "cannot open source '9'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model_class", "cfg"),
    [(DetectionModel, "yolov8n.yaml"), (ClassificationModel, "yolov8n-cls.yaml"), (SegmentationModel, "yolov8n-seg.yaml")],
)
def test_stock_ultralytics_checkpoints_are_refused(model_class, cfg, tiny_data, tmp_path, capsys):
    stock = tmp_path / "stock.pt"
    torch.save({"model": model_class(cfg, nc=2, verbose=False).half()}, stock)
    folder = tiny_data.parent / "images" / "val"
    for argv in (["predict", f"source={folder}"], ["val", f"data={tiny_data}"], ["export", "format=onnx"]):
        assert main([argv[0], f"model={stock}", *argv[1:]]) == 2, argv
        assert f"holds an ultralytics {model_class.__name__}, not a SpikeYOLO" in capsys.readouterr().err
    assert not list(tmp_path.glob("stock.*[!t]"))  # nothing exported


def test_console_script_reports_user_errors_without_traceback(tiny_data, tmp_path):
    stock = tmp_path / "cls.pt"
    torch.save({"model": ClassificationModel("yolov8n-cls.yaml", nc=2, verbose=False).half()}, stock)
    script = shutil.which("spikeyolo", path=str(Path(sys.executable).parent))
    r = subprocess.run([script, "predict", f"model={stock}", f"source={tiny_data.parent}"],
                       capture_output=True, text=True, timeout=120, env=os.environ, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("spikeyolo predict: error: ") and "holds an ultralytics ClassificationModel" in r.stderr


def test_console_script_predict_saves_by_default(checkpoint, tiny_data, tmp_path):
    image = next((tiny_data.parent / "images" / "val").glob("*.jpg"))
    script = shutil.which("spikeyolo", path=str(Path(sys.executable).parent))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # else ultralytics saves into its tests/
    r = subprocess.run([script, "predict", f"model={checkpoint}", f"source={image}", "imgsz=64"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "runs" / "detect" / "predict" / image.name).is_file()  # as `yolo predict`: save=True


def _detections(results) -> list[np.ndarray]:
    """Per image ``[n, 6]``: x1, y1, x2, y2, confidence, class."""
    return [r.boxes.data.numpy() for r in results]


def test_predict_image_folder_and_video_save_annotated_outputs(checkpoint, tiny_data, tmp_path):
    images = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))
    common = ["imgsz=64", "conf=0.001", "max_det=5", "save=True", f"project={tmp_path}"]
    assert main(["predict", f"model={checkpoint}", f"source={images[0]}", *common, "name=image"]) == 0
    drawn = cv2.imread(str(tmp_path / "image" / images[0].name))
    assert drawn.shape == cv2.imread(str(images[0])).shape
    assert np.abs(drawn.astype(int) - cv2.imread(str(images[0]))).max() > 100  # boxes and labels were drawn

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 64))
    for f in images[:3]:
        writer.write(cv2.imread(str(f)))
    writer.release()
    assert main(["predict", f"model={checkpoint}", f"source={clip}", *common, "name=video"]) == 0
    saved = cv2.VideoCapture(str(tmp_path / "video" / "clip.avi"))
    frames = []
    while (frame := saved.read()[1]) is not None:
        frames.append(frame)
    saved.release()
    assert len(frames) == 3 and np.abs(frames[0].astype(int) - cv2.imread(str(images[0]))).max() > 100


def test_predict_spike_driven_and_export(checkpoint, tiny_data, tmp_path):
    folder = tiny_data.parent / "images" / "val"
    assert main(["predict", f"model={checkpoint}", f"source={folder}", "imgsz=64", "save=True",
                 f"project={tmp_path}", "name=pred", "spike_driven=True"]) == 0
    assert len(list((tmp_path / "pred").glob("*.jpg"))) == len(list(folder.glob("*.jpg")))
    exported = tmp_path / "tiny.pt"
    shutil.copy(checkpoint, exported)
    assert main(["export", f"model={exported}", "imgsz=64"]) == 0  # ultralytics' default format: torchscript
    kwargs = {"imgsz": 64, "conf": 0.001, "verbose": False}
    source = [str(f) for f in sorted(folder.glob("*.jpg"))[:3]]
    expected = _detections(SpikeYOLO(exported).predict(source, **kwargs))
    got = _detections(SpikeYOLO(exported.with_suffix(".torchscript")).predict(source, **kwargs))
    assert sum(len(d) for d in expected) > 0
    for e, g in zip(expected, got):
        assert e.shape == g.shape and np.allclose(e, g, rtol=1e-4, atol=1e-3)


def test_train_val_convert_audit_through_the_command(tiny_data, tmp_path):
    from checkpoints.reference_format import save_reference_checkpoint

    assert main(["train", "model=snn_yolov8n.yaml", f"data={tiny_data}", "epochs=1", "imgsz=64", "batch=8",
                 "plots=False", f"project={tmp_path}", "name=train"]) == 0
    best = tmp_path / "train" / "weights" / "best.pt"
    assert main(["val", f"model={best}", f"data={tiny_data}", "imgsz=64", f"project={tmp_path}", "name=val"]) == 0
    assert (tmp_path / "val" / "firing_rates.json").is_file()

    reference = save_reference_checkpoint(tmp_path / "23M_best.pt", SpikeYOLO(best).model, {0: "a", 1: "b", 2: "c", 3: "d"},
                                          ema=None)
    assert main(["convert", f"model={reference}", f"out={tmp_path / 'converted.pt'}"]) == 0
    assert SpikeYOLO(tmp_path / "converted.pt").model.names == {0: "a", 1: "b", 2: "c", 3: "d"}
    assert main(["audit", f"model={tmp_path / 'converted.pt'}", "imgsz=64", f"json={tmp_path / 'audit.json'}"]) == 0
    assert (tmp_path / "audit.json").is_file()


def test_events_mode_runs_the_event_camera_commands(tmp_path, capsys):
    assert main(["events", "synth", f"out={tmp_path / 'raw'}", "train=1", "test=1", "seconds=0.5"]) == 0
    written = sorted(p.relative_to(tmp_path / "raw").as_posix() for p in (tmp_path / "raw").rglob("*_td.dat"))
    assert [p.split("/")[0] for p in written] == ["test", "train"]
    assert main(["events", "convert", f"source={tmp_path / 'missing'}", f"out={tmp_path / 'out'}"]) == 2
    assert "spikeyolo events convert: error:" in capsys.readouterr().err and not (tmp_path / "out").exists()
