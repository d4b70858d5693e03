"""The I-LIF neuron: exact forward and gradients against spikingjelly and hand-computed cases."""

import copy

import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.neuron import ILIF, quantize_count


def _reference_ilif(T):
    return neuron.ILIFNode(
        tau=4.0 / 3.0, surrogate_function=surrogate.MultiLevelSpikeCount(4), detach_reset=True, step_mode="m"
    )


@pytest.mark.parametrize("T", [1, 2, 3, 4])
def test_matches_spikingjelly_ilif_forward_and_input_gradient(T):
    torch.manual_seed(T)
    x = (torch.randn(T, 3, 8, 5, 5) * 2.5 + 1.5).double()
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = ILIF(), _reference_ilif(T).double()
    y_ours, y_ref = ours(x_ours), ref(x_ref)
    assert torch.equal(y_ours, y_ref)
    weights = torch.randn_like(x)
    (y_ours * weights).sum().backward()
    (y_ref * weights).sum().backward()
    assert torch.equal(x_ours.grad, x_ref.grad)
    assert y_ours.unique().tolist() <= [0.0, 1.0, 2.0, 3.0, 4.0]


def test_rounds_half_to_even_and_clamps_to_window():
    u = torch.tensor([[-3.0, -0.5, 0.49, 0.5, 1.5, 2.5, 3.5, 3.51, 4.0, 7.2]])
    assert ILIF()(u.unsqueeze(-1)).flatten().tolist() == [0, 0, 0, 0, 2, 2, 4, 4, 4, 4]


def test_straight_through_gradient_in_closed_window():
    u = torch.tensor([-1e-3, 0.0, 2.2, 4.0, 4.0 + 1e-3], requires_grad=True)
    quantize_count(u, 4).sum().backward()
    assert u.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_two_steps_by_hand_leak_and_detached_reset():
    x = torch.tensor([[1.3], [0.6]], requires_grad=True)
    s = ILIF()(x)
    # u0 = 1.3 -> s0 = 1, v0 = 0.3; u1 = 0.25 * 0.3 + 0.6 = 0.675 -> s1 = 1
    assert s.flatten().tolist() == [1.0, 1.0]
    s[1].sum().backward()
    # ds1/dx0 = 0.25 (leak kept, reset detached, 0 <= u1 <= 4); ds1/dx1 = 1
    assert x.grad.flatten().tolist() == pytest.approx([0.25, 1.0])


def test_gen1_dynamics_halve_input_and_leak_half():
    x = torch.tensor([[3.0], [5.0], [0.2]])
    s = ILIF(decay=0.5, input_scale=0.5)(x).flatten().tolist()
    # spikingjelly LIF tau=2 as patched by the reference: h = v + (x - v) / 2, s = round(clamp(h)), v = h - s
    v, expected = 0.0, []
    for xt in x.flatten().tolist():
        h = v + (xt - v) / 2
        st = float(torch.round(torch.clamp(torch.tensor(h), 0, 4)))
        expected.append(st)
        v = h - st
    assert s == expected == [2.0, 2.0, 0.0]


@pytest.mark.parametrize("D", [1, 2, 8])
def test_other_D(D):
    x = torch.linspace(-1, D + 2, 50).view(1, 50)
    assert ILIF(max_count=D)(x).max().item() == D


def test_single_step_mode_equals_multi_step_and_reset_net():
    x = torch.randn(4, 2, 6) * 3
    multi = ILIF()(x)
    single = ILIF(step_mode="s")
    steps = torch.stack([single(xt) for xt in x])
    assert torch.equal(multi, steps)
    assert isinstance(single.v, torch.Tensor)
    functional.reset_net(single)
    assert single.v == 0.0


def test_invalid_D_is_refused():
    with pytest.raises(ValueError, match="positive integer"):
        ILIF(max_count=0)
    with pytest.raises(ValueError, match="positive integer"):
        ILIF(max_count=2.5)


def test_deepcopy_after_reset_and_inference_traces_to_plain_ops():
    n = ILIF()
    x = torch.randn(2, 3, requires_grad=True)
    n(x)
    functional.reset_net(n)
    copy.deepcopy(n)
    with torch.no_grad():
        graph = torch.jit.trace(ILIF(), torch.randn(1, 4), check_trace=False).graph
    kinds = {node.kind() for node in graph.nodes()}
    assert kinds & {"aten::round", "aten::round_"} and "prim::PythonOp" not in kinds  # ONNX: Round


def test_model_forward_starts_every_neuron_at_rest_also_after_fusion():
    """Neurons charged outside the model's forward, after fusion swapped layers, start the next forward at rest."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=2, verbose=False).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fused = model.fuse(verbose=False)  # after the first forward (the stride probe)
        expected = fused(x)[0]
        neurons = [m for m in fused.modules() if isinstance(m, ILIF)]
        for m in neurons:
            m.v = torch.full((1,), 3.0)  # a charged membrane left over from outside the model's forward
        assert torch.equal(fused(x)[0], expected)
    assert len(neurons) == 88 and all(m.v == 0.0 for m in neurons)


def test_exports_to_onnx_as_plain_operations(tmp_path):
    import onnx
    import onnxruntime as ort

    x = torch.randn(2, 1, 3, 8, 8) * 3  # [T, B, C, H, W], two steps: leak and reset are exported too
    path = tmp_path / "ilif.onnx"
    with torch.no_grad():
        torch.onnx.export(ILIF().eval(), (x,), str(path), dynamo=False, opset_version=17)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Round", "Clip"} <= ops
    session = ort.InferenceSession(str(path))
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert torch.equal(torch.from_numpy(out), ILIF()(x))
