"""torch.compile: the detector traces to one graph (eval and training) and compiles to the same numbers.

Inductor's C++ code generation takes minutes on 2 cores, so these tests trace with dynamo and run
the captured graphs with the ``aot_eager`` backend (same graph capture and autograd split as
inductor, no code generation). ``bench/compile.py`` times the real inductor build.
"""

from copy import deepcopy
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch._dynamo

from spikeyolo import SpikeYOLO
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.layout import using_memory_format
from spikeyolo.nn.sepconv import SepConv
from spikeyolo.nn.neuron import ILIF

from firing_weights import perturb_batchnorms


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False)
    m.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)  # loss gains, as the trainer sets them
    perturb_batchnorms(m)
    return m


def test_fused_inference_is_one_graph(model):
    fused = deepcopy(model).eval().fuse(verbose=False)
    with torch.no_grad():  # a shape the head has not seen: its anchors are rebuilt inside the graph
        explained = torch._dynamo.explain(fused)(torch.rand(2, 3, 96, 64))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    # every convolution of the model is in the graph, not run eagerly around it
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in fused.modules())
    traced = sum("conv2d" in str(op) for op in explained.ops_per_graph[0])
    assert traced == convs > 100


def test_compiled_training_step_matches_eager(model):
    torch._dynamo.reset()
    eager, compiled_model = deepcopy(model).train(), deepcopy(model).train()
    compiled = torch.compile(compiled_model, backend="aot_eager", fullgraph=True)  # fullgraph: a graph break raises
    batch = {"img": torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)),
             "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([[0.0], [2.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.4, 0.6, 0.2, 0.2]])}
    losses = []
    for net, forward in ((eager, eager), (compiled_model, compiled)):
        loss, _ = net.loss(batch, forward(batch["img"]))
        loss.sum().backward()
        losses.append(loss.detach())
    assert torch.allclose(losses[1], losses[0], rtol=1e-5)
    grads = [(a.grad, b.grad) for a, b in zip(eager.parameters(), compiled_model.parameters()) if a.grad is not None]
    assert len(grads) > 300
    assert all(torch.allclose(b, a, rtol=1e-3, atol=1e-6) for a, b in grads)
    # the neurons are back at rest after the compiled call: no state leaks into the next batch
    assert all(n._memories["v"] == 0.0 for n in compiled_model.modules() if isinstance(n, ILIF))


def test_trainer_and_validator_run_compiled(tiny_data, tmp_path):
    """ultralytics' ``compile=True`` wraps our model; EMA, checkpoints and validation still work."""
    real_compile = torch.compile
    calls = []

    def aot_eager_compile(model, mode=None, backend=None, **kwargs):
        calls.append(type(model).__name__)
        return real_compile(model, backend="aot_eager")

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with mock.patch.object(torch, "compile", aot_eager_compile):
        model = SpikeYOLO("snn_yolov8n.yaml")
        model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=8, workers=0, plots=False, warmup_epochs=0,
                    compile=True, project=str(tmp_path), name="compiled", exist_ok=True)
        assert calls == ["SpikeDetectionModel"]  # the trainer compiled our model
        best = SpikeYOLO(model.trainer.best)
        assert type(best.model) is SpikeDetectionModel  # the checkpoint holds the plain module, not the wrapper
        metrics = best.val(data=str(tiny_data), imgsz=64, batch=3, plots=False, compile=True,
                           project=str(tmp_path), name="val", exist_ok=True)  # batch 3: 8 images end in a batch of 2
    assert 0.0 <= metrics.box.map50 <= 1.0
    assert len(calls) == 2  # validation compiled too
    # training forward and both validation batch shapes ran as whole graphs, never dropping to eager
    assert dict(torch._dynamo.utils.counters["graph_break"]) == {}


def test_compiled_sepconv_with_its_channels_first_depthwise_matches_eager():
    """CUDA's fp32 training path (the depthwise convolution on a channels-first copy, its gradient
    handed back channels-last) traces to one graph with the same output and gradients."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = SepConv(16, kernel_size=7).train()
    compiled_block = deepcopy(eager)
    compiled = torch.compile(compiled_block, backend="aot_eager", fullgraph=True)
    x = (torch.randn(2, 3, 16, 12, 12) * 2).contiguous(memory_format=torch.channels_last_3d)
    with using_memory_format("cpu", torch.contiguous_format, "depthwise training"):
        outputs = []
        for block, forward in ((eager, eager), (compiled_block, compiled)):
            xi = x.clone().requires_grad_()
            y = forward(xi)
            (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
            outputs.append((y.detach(), xi.grad))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(eager.parameters(), compiled_block.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-4)
