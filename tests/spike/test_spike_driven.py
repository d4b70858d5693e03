"""Spike-driven inference equals integer inference; every synapse verifiably sees only 0 and 1."""

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.nms import non_max_suppression

from spikeyolo import SpikeYOLO
from spikeyolo.cfg import load_model_yaml
from spikeyolo.nn import SpikeDetectionModel, configure_neurons
from spikeyolo.spike import SpikeDrivenConv, spike_driven

from firing_weights import perturb_batchnorms


def _model(scale: str, t_steps: int, D: int = 4, seed: int = 0) -> SpikeDetectionModel:
    d = load_model_yaml(f"snn_yolov8{scale}.yaml")
    d["backbone"][0] = [-1, 1, "MS_GetT", [3, t_steps]]
    model = SpikeDetectionModel(d, nc=3, verbose=False).eval().double()
    configure_neurons(model, max_count=D)
    perturb_batchnorms(model, seed)
    return model.fuse(verbose=False)


def _run(model, x):
    with torch.no_grad():
        y, preds = model(x)
    return y, preds["feats"]


@pytest.mark.parametrize(("scale", "t_steps", "D"), [("n", 1, 4), ("n", 2, 4), ("s", 1, 4), ("s", 2, 4),
                                                     ("n", 1, 1), ("n", 1, 2), ("n", 2, 8)])
def test_spike_driven_equals_integer_inference(scale, t_steps, D):
    """float64, so that no rounding tie is hit: the two paths must agree spike for spike."""
    model = _model(scale, t_steps, D, seed=t_steps + D)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(D), dtype=torch.float64)
    y_int, maps_int = _run(model, x)
    with spike_driven(model) as ledger:
        assert sum(isinstance(m, SpikeDrivenConv) for m in model.modules()) == 88
        y_spk, maps_spk = _run(model, x)
    assert not any(isinstance(m, SpikeDrivenConv) for m in model.modules())  # restored on exit
    assert len(ledger.checked) == 88 and set(ledger.checked.values()) == {1}  # every synapse saw {0, 1}
    for a, b in zip(maps_int, maps_spk):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)
    det_int = non_max_suppression(y_int.float(), conf_thres=1e-9, iou_thres=0.7)
    det_spk = non_max_suppression(y_spk.float(), conf_thres=1e-9, iou_thres=0.7)
    assert sum(len(d) for d in det_int) > 0
    assert all(torch.equal(a, b) for a, b in zip(det_int, det_spk))


def test_bias_is_added_once_not_per_virtual_step():
    conv = torch.nn.Conv2d(2, 3, 1, bias=True)
    wrapper = SpikeDrivenConv(conv, D=4, name="probe")
    counts = torch.tensor([[[[0.0]], [[3.0]]]])  # [N=1, C=2, 1, 1]
    with torch.no_grad():
        expected = conv(counts)
        assert torch.allclose(wrapper(counts), expected)
        per_step_bias = wrapper.integrate(conv(wrapper.expand(counts)))  # the pitfall: bias in every virtual step
        assert torch.allclose(per_step_bias, expected + 3 * conv.bias.view(1, -1, 1, 1))
    with pytest.raises(ValueError, match="outside 0..D=4"):
        wrapper(torch.full((1, 2, 1, 1), 5.0))


def test_refuses_non_spiking_models_and_wrong_D():
    with pytest.raises(TypeError, match="no I-LIF neurons"):
        with spike_driven(DetectionModel("yolov8n.yaml", nc=2, verbose=False)):
            pass
    model = _model("n", 1)
    with pytest.raises(ValueError, match="D=2 does not match the model's trained D=4"):
        with spike_driven(model, D=2):
            pass
    model.model[2].Conv.lif1.max_count = 2
    with pytest.raises(ValueError, match="disagree on D"):
        with spike_driven(model):
            pass


def test_val_and_predict_spike_driven(tiny_data, tmp_path):
    model = SpikeYOLO("snn_yolov8n.yaml")
    model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=8, workers=0, plots=False, warmup_epochs=0,
                project=str(tmp_path), name="t", exist_ok=True)
    trained = SpikeYOLO(model.trainer.best)
    integer = trained.val(data=str(tiny_data), imgsz=64, batch=4, plots=False, project=str(tmp_path), name="v1")
    spiking = trained.val(data=str(tiny_data), imgsz=64, batch=4, plots=False, project=str(tmp_path), name="v2",
                          spike_driven=True)
    assert len(trained.spike_ledger.checked) == 88
    assert spiking.box.map50 == pytest.approx(integer.box.map50, abs=0.02)
    image = next((tiny_data.parent / "images" / "val").glob("*.jpg"))
    results = trained.predict(str(image), imgsz=64, conf=0.01, verbose=False, spike_driven=True)
    assert len(results) == 1
    with pytest.raises(ValueError, match="stream=False"):
        trained.predict(str(image), stream=True, spike_driven=True)
