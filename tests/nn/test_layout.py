"""Built models reproduce the reference state-dict layouts, parameter counts and layer shapes exactly."""

import math

import pytest
import torch
import yaml
from reference_data import reference_layout as _reference

from spikeyolo.nn import SpikeDetectionModel

# shared/ lies beside the checkout (sessions and CI alike)

PACKAGED = {  # reference layout file -> packaged model name
    "state_dict_snn_yolov8n.json": "snn_yolov8n.yaml",
    "state_dict_snn_yolov8s.json": "snn_yolov8s.yaml",
    "state_dict_snn_yolov8m_layer25.json": "snn_yolov8m.yaml",
    "state_dict_snn_yolov8l_layer25.json": "snn_yolov8l.yaml",
    "state_dict_gen1.json": "snn_yolov8s-gen1.yaml",
}
AS_SHIPPED = ["state_dict_snn_yolov8m.json", "state_dict_snn_yolov8l.json"]




def _layout(model: torch.nn.Module) -> list:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


def _assert_same_layout(model: torch.nn.Module, ref: dict) -> None:
    assert _layout(model) == ref["keys"]
    assert [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.named_buffers()] == ref["buffers"]
    assert sum(p.numel() for p in model.parameters()) == ref["params"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == ref["trainable_params"]
    assert len(model.state_dict()) == ref["num_state_dict_entries"]
    assert model.stride.tolist() == ref["stride"]


def _assert_layer_shapes(model: SpikeDetectionModel, ref: dict) -> None:
    """Per-layer parameter counts and eval output shapes for a 1x3x256x256 input."""
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(m.i, o)) for m in model.model]
    model.eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 256, 256))
    for h in hooks:
        h.remove()
    for layer in ref["layers"]:
        i = layer["i"]
        assert model.model[i].np == layer["params"], f"layer {i}"
        if i < len(model.model) - 1:
            assert list(shapes[i].shape) == layer["out_shape_eval_1x3x256x256"], f"layer {i}"
    y, preds = shapes[len(model.model) - 1]
    expected_y, expected_maps = ref["layers"][-1]["out_shape_eval_1x3x256x256"]
    assert list(y.shape) == expected_y
    assert [list(f.shape) for f in preds["feats"]] == expected_maps


@pytest.mark.parametrize("ref_name", list(PACKAGED))
def test_packaged_scales_match_released_layouts(ref_name):
    ref = _reference(ref_name)
    model = SpikeDetectionModel(PACKAGED[ref_name], verbose=False)
    _assert_same_layout(model, ref)
    if ref_name in ("state_dict_snn_yolov8n.json", "state_dict_gen1.json"):  # n and s cover every module
        _assert_layer_shapes(model, ref)


@pytest.mark.parametrize("ref_name", AS_SHIPPED)
def test_reference_yaml_as_shipped_still_builds_by_path(ref_name, tmp_path):
    ref = _reference(ref_name)
    d = {k: v for k, v in ref["yaml_dict"].items() if k not in ("scale", "yaml_file", "ch")}
    path = tmp_path / f"snn_yolov8{ref['scale']}.yaml"
    path.write_text(yaml.safe_dump(d))
    model = SpikeDetectionModel(str(path), verbose=False)
    _assert_same_layout(model, ref)
    assert ref["params"] in (45_784_256, 65_517_760)


def test_batchnorm_settings_and_head_bias_init():
    model = SpikeDetectionModel("snn_yolov8n.yaml", verbose=False)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 123
    assert all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)
    head = model.model[-1]
    for branch in head.cv2:
        assert torch.all(branch[-1].conv.bias == 1.0)
    cls_bias = [float(b[-1].conv.bias[0]) for b in head.cv3]
    assert cls_bias == pytest.approx([math.log(5 / 80 / (640 / s) ** 2) for s in (8, 16, 32)], abs=1e-6)
    assert cls_bias[0] == pytest.approx(-11.537, abs=1e-3) and cls_bias[2] == pytest.approx(-8.764, abs=1e-3)
    assert float(head.dfl.conv.weight.flatten()[15]) == 15.0 and not head.dfl.conv.weight.requires_grad


def test_gen1_config_has_gen1_neurons():
    from spikeyolo.nn.neuron import ILIF

    model = SpikeDetectionModel("snn_yolov8s-gen1.yaml", verbose=False)
    neurons = [m for m in model.modules() if isinstance(m, ILIF)]
    assert len(neurons) == 88 and all((n.decay, n.input_scale, n.D) == (0.5, 0.5, 4) for n in neurons)
