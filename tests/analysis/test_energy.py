"""Synaptic operations and energy: geometry, the published spreadsheet, presets, spikingjelly cross-check."""


import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from spikeyolo.analysis import energy_costs, energy_rows, energy_totals, synapse_geometry
from tests.analysis.spikingjelly_synops import compare_with_spikingjelly
from spikeyolo.analysis.template import compare_geometry, load_template, template_geometry, template_rates
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.spike.audit import audit
from tests.firing_weights import perturb_batchnorms

TEMPLATE = "snn_yolov8s"  # the packaged spreadsheet


@pytest.fixture(scope="module")
def template():
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def geometry_s640():
    """Geometry of the s model at the spreadsheet's 640×640 (module order: first layer, then 88 neurons)."""
    return synapse_geometry(SpikeDetectionModel("snn_yolov8s.yaml", verbose=False), 640)


def test_template_mode_reproduces_every_row_and_the_totals(template):
    fp32 = energy_costs("fp32")
    rows = energy_rows(template_geometry(template), template_rates(template), fp32, first_layer="template")
    assert len(rows) == len(template["rows"]) == 89
    for row, published in zip(rows, template["rows"]):
        assert row.geometry.macs == published["macs"], published["neuron"]
        assert row.e_ann_pj == pytest.approx(published["e_ann_pj"], rel=1e-12)
        assert row.e_snn_pj == pytest.approx(published["e_snn_pj"], rel=1e-12)
    totals = energy_totals(rows, fp32)
    assert totals["macs"] == template["totals"]["macs"] == 101_211_340_800
    assert totals["e_ann_mj"] == pytest.approx(465.57216768, rel=1e-12)
    assert totals["e_snn_mj"] == pytest.approx(34.4893704192, rel=1e-12)


def test_model_geometry_matches_the_template_except_its_two_wrong_rows(template, geometry_s640):
    differences = compare_geometry(template_geometry(template), geometry_s640)
    assert [d["name"] for d in differences] == ["model.12.Conv.lif3", "model.22.lif1", "model.22.lif2"]
    lif3 = differences[0]
    assert (lif3["template"]["h_in"], lif3["model"]["h_in"]) == (20, 40)  # SepRepConv of layer 12 runs at 40×40
    assert (differences[1]["template"]["c_out"], differences[1]["model"]["c_out"]) == (512, 768)  # [3, 7]: hidden 768


def test_corrected_mode_totals(template, geometry_s640):
    fp32 = energy_costs("fp32")
    rates = template_rates(template)
    sheet = energy_totals(energy_rows(geometry_s640, rates, fp32, first_layer="template"), fp32)
    assert sheet["macs"] == 104_514_355_200
    assert sheet["e_ann_mj"] == pytest.approx(480.76603392, rel=1e-12)
    assert sheet["e_snn_mj"] == pytest.approx(35.26588551168, rel=1e-12)
    usual = energy_totals(energy_rows(geometry_s640, rates, fp32, first_layer="mac"), fp32)
    first_macs = 3 * 64 * 7 * 7 * 160 * 160
    assert usual["first_layer_macs"] == first_macs == 240_844_800
    assert usual["e_snn_mj"] - sheet["e_snn_mj"] == pytest.approx(first_macs * (4.6 - 0.9 * 4.6) / 1e9, rel=1e-9)
    assert round(usual["e_snn_mj"], 2) == 35.38
    assert usual["sops"] == pytest.approx(sum(rates[g.name] * g.macs for g in geometry_s640 if g.spiking), rel=1e-12)


def test_dense_and_executed_macs_follow_the_block_formulas(geometry_s640):
    by_name = {g.name: g for g in geometry_s640}
    for g in geometry_s640:
        assert g.macs == g.c_in * g.c_out * g.k**2 * g.h_out * g.w_out // g.groups
        assert g.h_out == g.h_in // g.stride and g.T == 1
    rep = by_name["model.6.0.lif1"]  # MS_ConvBlock RepConv: 1×1 (C→C), depthwise 3×3, 1×1 (C→C')
    hw = rep.h_out * rep.w_out
    assert (rep.k, rep.groups) == (3, 1)
    assert rep.executed_macs == hw * (rep.c_in * rep.c_in + 9 * rep.c_in + rep.c_in * rep.c_out)
    sep = by_name["model.6.0.Conv.lif3"]  # SepRepConv: pad 1, 1×1 (C→C') on the padded map, depthwise 3×3
    h, w = sep.h_out, sep.w_out
    assert sep.executed_macs == (h + 2) * (w + 2) * sep.c_in * sep.c_out + h * w * 9 * sep.c_out
    dw = by_name["model.6.0.Conv.lif2"]
    assert dw.groups == dw.c_in == dw.c_out and dw.k == 7 and dw.executed_macs == dw.macs
    first = geometry_s640[0]
    assert (first.name, first.spiking, first.k, first.stride, first.h_out) == ("first_layer", False, 7, 4, 160)


def test_energy_presets_come_from_spikingjelly():
    assert (energy_costs("fp32").e_mac_pj, energy_costs("fp32").e_ac_pj) == (4.6, 0.9)
    assert (energy_costs("fp16").e_mac_pj, energy_costs("fp16").e_ac_pj) == (1.5, 0.4)
    assert (energy_costs("int8").e_mac_pj, energy_costs("int8").e_ac_pj) == (0.23, 0.03)
    assert "ISSCC 2014" in energy_costs("int8").source
    with pytest.raises(ValueError, match="unknown energy preset 'fp8'"):
        energy_costs("fp8")


def test_time_steps_multiply_rates_and_first_layer():
    model = SpikeDetectionModel("snn_yolov8n-gen1.yaml", verbose=False)  # layer 0 repeats images T=2 times
    geometry = synapse_geometry(model, 64)
    assert {g.T for g in geometry} == {2}
    rates = {g.name: 0.5 for g in geometry if g.spiking}
    rows = energy_rows(geometry, rates, energy_costs("fp32"))
    assert all(r.fr == 1.0 and r.sops == r.geometry.macs for r in rows if r.fr is not None)
    first = rows[0]
    assert first.sops == 2 * first.geometry.macs and first.e_snn_pj == pytest.approx(4.6 * 2 * first.geometry.macs)
    frames = synapse_geometry(model, 64, frames=3)  # event data [B, T, C, H, W] sets T
    assert {g.T for g in frames} == {3}


def test_bad_inputs_fail_clearly(tmp_path, geometry_s640):
    model = SpikeDetectionModel("snn_yolov8n.yaml", verbose=False)
    with pytest.raises(ValueError, match="not a positive multiple of the model stride 32"):
        synapse_geometry(model, 100)
    with pytest.raises(TypeError, match="no I-LIF neurons"):
        synapse_geometry(DetectionModel("yolov8n.yaml", verbose=False), 64)
    fp32 = energy_costs("fp32")
    rates = {g.name: 1.0 for g in geometry_s640 if g.spiking}
    with pytest.raises(ValueError, match=r"firing rate 4.5 outside 0..D=4"):
        energy_rows(geometry_s640, {**rates, "model.2.Conv.lif1": 4.5}, fp32, max_rate=dict.fromkeys(rates, 4))
    with pytest.raises(ValueError, match="outside"):
        energy_rows(geometry_s640, {**rates, "model.2.Conv.lif1": -0.1}, fp32)
    with pytest.raises(KeyError, match="no firing rate for neuron model.2.Conv.lif1"):
        energy_rows(geometry_s640, {k: v for k, v in rates.items() if k != "model.2.Conv.lif1"}, fp32)
    with pytest.raises(ValueError, match="first_layer must be one of"):
        energy_rows(geometry_s640, rates, fp32, first_layer="free")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_template(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        load_template(tmp_path / "bad.json")
    (tmp_path / "rows.json").write_text('{"rows": [{"neuron": "x", "fr": 1}]}')
    with pytest.raises(ValueError, match="needs 'rows' with the fields"):
        load_template(tmp_path / "rows.json")


def test_sop_estimate_against_spikingjelly_op_counter():
    torch.manual_seed(0)
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False).eval()
    perturb_batchnorms(model, seed=3)
    images = torch.rand(2, 3, 64, 64)
    rows = compare_with_spikingjelly(model, images)
    assert len(rows) == 88 and sum(r["spikingjelly"] for r in rows) > 0
    for r in rows:
        if r["k"] == 1:  # no padding: fr × MACs counts exactly the additions on spikes
            assert r["spikingjelly"] == pytest.approx(r["estimate"], rel=1e-9), r["neuron"]
        elif r["stride"] == 1:  # padding never fires, the estimate charges it at the mean rate
            assert r["spikingjelly"] <= r["estimate"] * (1 + 1e-9), r["neuron"]
    # spikingjelly's counter equals our own exact count of the spike-driven audit, conv by conv
    audited = {row.module: row.count for row in audit(model, images) if row.operation == "binary synapse"}
    counted = {r["neuron"]: r["spikingjelly"] for r in rows}
    from spikeyolo.nn.synapses import synapses

    for s in synapses(model):
        assert counted[s.neuron] == pytest.approx(audited[s.conv], rel=1e-9), s.conv
