"""Released-checkpoint import: all seven reference layouts, both forms, safety, bad files."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from reference_data import reference_layout as _layout

from spikeyolo import SpikeYOLO
from spikeyolo.checkpoints import (
    ReferenceCheckpointError,
    UnsafeCheckpointError,
    build_reference_model,
    convert_reference_checkpoint,
    load_reference_checkpoint,
    pickle_globals,
)
from spikeyolo.commands.cli import main as cli
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.neuron import ILIF

from . import reference_format as rf
from .reference_format import save_reference_checkpoint

LAYOUTS = {  # layout file -> (family, scale, release layer 25)
    "state_dict_snn_yolov8n.json": ("coco", "n", False),
    "state_dict_snn_yolov8s.json": ("coco", "s", False),
    "state_dict_snn_yolov8m.json": ("coco", "m", False),
    "state_dict_snn_yolov8m_layer25.json": ("coco", "m", True),
    "state_dict_snn_yolov8l.json": ("coco", "l", False),
    "state_dict_snn_yolov8l_layer25.json": ("coco", "l", True),
    "state_dict_gen1.json": ("gen1", "s", False),
}




def _model_for(ref: dict, tmp_path: Path, seed: int) -> SpikeDetectionModel:
    """Our model with the layout's architecture (from its own YAML dict) and random FP16-exact weights."""
    d = {k: v for k, v in ref["yaml_dict"].items() if k not in ("scale", "yaml_file", "ch")}
    if "gen1" in ref["tag"].lower() or ref["nc"] == 2:
        d["neuron"] = {"decay": 0.5, "input_scale": 0.5}
    path = tmp_path / f"snn_yolov8{ref['scale']}-layout.yaml"
    path.write_text(yaml.safe_dump(d))
    model = SpikeDetectionModel(str(path), verbose=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_((torch.randn(t.shape, generator=g) * 0.1).half().float())
    return model


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_imports_exactly_in_both_forms(layout, tmp_path):
    ref = _layout(layout)
    family, scale, release = LAYOUTS[layout]
    model, ema = _model_for(ref, tmp_path, 0), _model_for(ref, tmp_path, 1)
    names = {i: f"class{i}" for i in range(ref["nc"])}
    for form, kwargs in (("training", {"ema": ema}), ("stripped", {"ema": None})):
        path = save_reference_checkpoint(tmp_path / f"{form}.pt", ema if form == "stripped" else model, names,
                                         gen1=family == "gen1", **kwargs)
        if "pickle_globals_training_checkpoint" in ref:  # the file is what the reference fork wrote
            assert sorted(pickle_globals(path)) == ref[f"pickle_globals_{form}_checkpoint"]
        imported = load_reference_checkpoint(path)
        assert (imported.family, imported.scale, imported.release_layer25, imported.form) == (family, scale, release, form)
        built = build_reference_model(imported)
        state = built.state_dict()
        assert [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()] == ref["keys"]
        expected = ema.state_dict()  # the EMA wins over the raw model
        assert all(torch.equal(state[k], expected[k]) for k in expected)
        assert built.names == names and sum(p.numel() for p in built.parameters()) == ref["params"]
        decays = {(n.decay, n.input_scale) for n in built.modules() if isinstance(n, ILIF)}
        assert decays == ({(0.5, 0.5)} if family == "gen1" else {(0.25, 1.0)})


@pytest.fixture(scope="module")
def reference_n(tmp_path_factory):
    """A stripped-form reference SpikeYOLO-n with 3 named classes and its source model."""
    tmp = tmp_path_factory.mktemp("ref")
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False)
    path = save_reference_checkpoint(tmp / "23M_best.pt", model, {0: "car", 1: "person", 2: "dog"}, ema=None)
    return path, model


def test_spikeyolo_loads_validates_predicts_and_converts(reference_n, tiny_data, tmp_path):
    path, source = reference_n
    model = SpikeYOLO(path)
    assert model.model.names == {0: "car", 1: "person", 2: "dog"} and model.task == "detect"
    image = next((tiny_data.parent / "images" / "val").glob("*.jpg"))
    results = model.predict(str(image), imgsz=64, verbose=False)
    assert results[0].names[1] == "person"
    converted = convert_reference_checkpoint(path, tmp_path / "converted.pt")
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_reference_checkpoint(path, converted)
    assert torch.load(converted, weights_only=True)["model"].names[2] == "dog"  # restricted loading works
    again = SpikeYOLO(converted).model.state_dict()
    original = source.state_dict()
    assert all(torch.equal(again[k].float(), original[k].half().float()) if original[k].is_floating_point()
               else torch.equal(again[k], original[k]) for k in original)


def test_imported_reference_fine_tunes(reference_n, tiny_data, tmp_path):
    path, _ = reference_n
    model = SpikeYOLO(path)
    model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=8, workers=0, plots=False, warmup_epochs=0,
                project=str(tmp_path), name="ft", exist_ok=True)
    tuned = SpikeYOLO(model.trainer.best).model
    assert tuned.names == {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"}  # the new dataset's classes
    assert tuned.model[-1].nc == 4


def test_command_line_convert_and_info(reference_n, tmp_path, capsys):
    path, _ = reference_n
    assert cli(["info", f"model={path}"]) == 0
    assert "coco SpikeYOLO-n, 3 classes, stripped form" in capsys.readouterr().out
    assert cli(["convert", f"model={path}", f"out={tmp_path / 'new.pt'}"]) == 0
    assert cli(["convert", f"model={path}", f"out={tmp_path / 'new.pt'}"]) == 2
    assert "exists" in capsys.readouterr().err


class _Evil:
    def __init__(self, call):
        self.call = call

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize(
    ("call", "offender"),
    [
        (lambda s: (os.system, (f"touch {s}",)), "system"),
        (lambda s: (eval, (f"open({str(s)!r}, 'w')",)), "eval"),
        (lambda s: (subprocess.call, (["touch", str(s)],)), r"(subprocess|commands)\.call"),  # py2 name under protocol 2
    ],
)
def test_malicious_pickles_are_refused_without_side_effect(reference_n, tmp_path, call, offender):
    """A real reference tree with one poisoned entry: refused, listed, and the payload never runs."""
    _, model = reference_n
    sentinel, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, rf.SPIKFORMER, types.SimpleNamespace(**rf.FAKE))
        mp.setattr("ultralytics.nn.tasks.DetectionModel", rf.FAKE_DETECTION_MODEL)
        payload = {"model": rf.reference_tree(model, {0: "a", 1: "b", 2: "c"}), "train_args": {"x": _Evil(call(sentinel))}}
        torch.save(payload, evil)
    for attempt in (lambda: SpikeYOLO(evil), lambda: load_reference_checkpoint(evil)):
        with pytest.raises(UnsafeCheckpointError, match=offender) as info:
            attempt()
        assert "Nothing was loaded" in str(info.value)
    assert cli(["convert", f"model={evil}", f"out={tmp_path / 'out.pt'}"]) == 2
    assert not (tmp_path / "out.pt").exists() and not sentinel.exists()


def test_a_checkpoint_replaced_in_place_is_checked_afresh(tmp_path):
    """pickle_globals remembers what it read per file version; a swapped file is never judged by the old entry."""
    sentinel, path = tmp_path / "pwned", tmp_path / "best.pt"
    torch.save({"model": None, "train_args": {"x": 1}}, path)
    assert "os.system" not in pickle_globals(path) and "posix.system" not in pickle_globals(path)
    stamp = path.stat()
    torch.save({"model": None, "train_args": {"x": _Evil((os.system, (f"touch {sentinel}",)))}}, path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the modification time forged back
    assert {"os.system", "posix.system"} & pickle_globals(path)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        SpikeYOLO(path)
    assert not sentinel.exists()


def test_unknown_class_is_refused(tmp_path):
    class Unknown:
        pass

    Unknown.__module__, Unknown.__qualname__ = "evil.module", "Thing"
    path = tmp_path / "unknown.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "evil", types.ModuleType("evil"))
        mp.setitem(sys.modules, "evil.module", types.SimpleNamespace(Thing=Unknown))
        mp.setitem(sys.modules, "ultralytics.nn.modules.yolo_spikformer", types.SimpleNamespace(mem_update=ILIF))
        torch.save({"model": Unknown()}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.module.Thing"):
        load_reference_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError, match="evil.module.Thing"):
        SpikeYOLO(path)


def test_bad_files_give_clear_errors(reference_n, tmp_path):
    path, _ = reference_n
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TypeError, match="not a loadable checkpoint"):
        SpikeYOLO(truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(TypeError, match="empty"):
        SpikeYOLO(empty)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(TypeError, match="not a SpikeYOLO checkpoint"):
        SpikeYOLO(plain)
    assert cli(["info", f"model={plain}"]) == 2


def test_state_dict_of_another_architecture_is_refused(tmp_path):
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False)
    del model.model[25].conv2  # a layer the reference layouts all have
    path = save_reference_checkpoint(tmp_path / "odd.pt", model, {0: "a", 1: "b", 2: "c"}, ema=None)
    with pytest.raises(ReferenceCheckpointError, match="does not match SpikeYOLO-n"):
        build_reference_model(load_reference_checkpoint(path))
