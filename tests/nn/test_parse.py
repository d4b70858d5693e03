"""Model YAML parsing: scales, packaged names, and clear errors for bad configs."""

import pytest
import yaml

from spikeyolo.cfg import ModelConfigError, load_model_yaml, resolve_model_cfg
from spikeyolo.nn import SpikeDetectionModel

TINY = {
    "nc": 2,
    "backbone": [
        [-1, 1, "MS_GetT", [3, 1]],
        [-1, 1, "MS_DownSampling", [32, 7, 4, 2, True]],
        [-1, 1, "MS_DownSampling", [32, 3, 2, 1, False]],
        [-1, 1, "MS_DownSampling", [32, 3, 2, 1, False]],
        [-1, 1, "MS_DownSampling", [32, 3, 2, 1, False]],
    ],
    "head": [[[2, 3, 4], 1, "SpikeDetect", ["nc"]]],
}


def _write(tmp_path, d, name="custom.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d) if isinstance(d, dict) else d)
    return str(path)


def test_custom_yaml_builds(tmp_path):
    model = SpikeDetectionModel(_write(tmp_path, TINY), verbose=False)
    assert model.stride.tolist() == [8.0, 16.0, 32.0] and model.yaml["nc"] == 2


def test_unknown_module_names_layer(tmp_path):
    d = {**TINY, "backbone": TINY["backbone"][:2] + [[-1, 1, "MS_Blok", [4, 7]]] + TINY["backbone"][3:]}
    with pytest.raises(ModelConfigError, match=r"layer 2: unknown module 'MS_Blok'"):
        SpikeDetectionModel(_write(tmp_path, d), verbose=False)


def test_wrong_argument_count_names_layer_and_module(tmp_path):
    d = {**TINY, "backbone": TINY["backbone"][:1] + [[-1, 1, "MS_DownSampling", [32, 7, 4, 2, True, 1, 2]]] + TINY["backbone"][2:]}
    with pytest.raises(ModelConfigError, match=r"layer 1 \(MS_DownSampling\): arguments"):
        SpikeDetectionModel(_write(tmp_path, d), verbose=False)


def test_bad_from_index_and_bad_row(tmp_path):
    d = {**TINY, "head": [[[2, 3, 9], 1, "SpikeDetect", ["nc"]]]}
    with pytest.raises(ModelConfigError, match=r"layer 5 \(SpikeDetect\): 'from'"):
        SpikeDetectionModel(_write(tmp_path, d), verbose=False)
    d = {**TINY, "backbone": [[-1, 1, "MS_GetT"]] + TINY["backbone"][1:]}
    with pytest.raises(ModelConfigError, match=r"layer 0: expected \[from, repeats, module, args\]"):
        SpikeDetectionModel(_write(tmp_path, d), verbose=False)


def test_malformed_missing_and_incomplete_files(tmp_path):
    with pytest.raises(ModelConfigError, match="not valid YAML"):
        load_model_yaml(_write(tmp_path, "nc: [1, 2\nbackbone: {", "broken.yaml"))
    with pytest.raises(ModelConfigError, match=r"lacks \['head'\]"):
        load_model_yaml(_write(tmp_path, {"nc": 2, "backbone": []}, "nohead.yaml"))
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_model_cfg(tmp_path / "absent.yaml")
    with pytest.raises(ModelConfigError, match="'nc' must be a positive integer"):
        SpikeDetectionModel(_write(tmp_path, {**TINY, "nc": 0}), verbose=False)


def test_unknown_scale_is_refused():
    with pytest.raises(ModelConfigError, match="scale 'x'"):
        load_model_yaml("snn_yolov8x.yaml")


def test_packaged_names_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = load_model_yaml("snn_yolov8s.yaml")
    assert d["scale"] == "s" and d["yaml_file"].endswith("snn_yolov8s.yaml")
    assert load_model_yaml(d["yaml_file"])["scale"] == "s"  # the stored name rebuilds the same scale
