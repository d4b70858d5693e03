"""ONNX export through the stock exporter: onnxruntime parity with PyTorch and equal detections.

The model is SpikeYOLO-n with BatchNorm statistics that make nearly every neuron fire (an
untrained model leaves most neurons silent, so parity would hold vacuously). In float32, a
membrane potential within ~1e-6 of k + 0.5 can round to a different count in onnxruntime than
in PyTorch (the convolutions sum in different orders); such a flip propagates. An image whose
outputs differ must therefore show that its first differing neuron (all neurons before it
agree exactly) differs only at rounding ties, and most images must match outright.
"""

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from firing_weights import perturb_batchnorms
from ultralytics import YOLO

from spikeyolo import SpikeYOLO
from spikeyolo.nn import ILIF, SpikeDetectionModel

NAMES = {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"}
RTOL = 1e-4  # max |onnx - torch| over the largest |torch| of the same output part (boxes, scores)
TIE = 1e-4  # a count may differ only where the membrane sits this close to k + 0.5


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_data):
    """(checkpoint, onnx file, fused float32 PyTorch model, val images [N, 3, 64, 64] float32 RGB 0..1)."""
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=4, verbose=False)
    perturb_batchnorms(model, seed=2)
    model.names = dict(NAMES)
    path = tmp_path_factory.mktemp("export") / "firing.pt"
    torch.save({"model": model.half(), "train_args": {"imgsz": 64, "data": str(tiny_data)}}, path)
    onnx_file = SpikeYOLO(path).export(format="onnx", imgsz=64)  # the stock Exporter, fused
    reference = SpikeYOLO(path).model.float().fuse(verbose=False).eval()
    files = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))
    images = np.stack([cv2.imread(str(f))[..., ::-1].transpose(2, 0, 1) for f in files]).astype(np.float32) / 255
    return path, onnx_file, reference, images, files


def _session_with_neurons(onnx_file: str) -> tuple[ort.InferenceSession, dict[str, tuple[str, str]]]:
    """A session that also outputs every neuron's clamped membrane and count.

    Returns the session and ``{module path: (membrane output, count output)}``, the module path
    taken from the exporter's node scope (``/model.26/cv3.0/cv3.0.2/lif/Round`` → ``model.26.cv3.0.2.lif``).
    """
    graph = onnx.load(onnx_file)
    neurons = {}
    for node in graph.graph.node:
        if node.op_type == "Round":
            scopes = node.name.strip("/").split("/")[:-1]  # a ModuleList item repeats its parent: cv3.0/cv3.0.2
            path = [s for s, inner in zip(scopes, [*scopes[1:], ""]) if not inner.startswith(f"{s}.")]
            neurons[".".join(path)] = (node.input[0], node.output[0])
    for membrane, count in neurons.values():
        graph.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in (membrane, count))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"]), neurons


def _torch_neurons(model: torch.nn.Module, image: np.ndarray) -> tuple[np.ndarray, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Output ``[1, 4 + nc, A]`` and, in execution order, (module path, membrane, count) of every I-LIF (T = 1)."""
    seen, hooks = [], []

    def record(name: str, neuron: ILIF, inputs: tuple[torch.Tensor], counts: torch.Tensor) -> None:
        assert inputs[0].shape[0] == 1  # T = 1: the membrane is the scaled input (no leak term yet)
        seen.append((name, (inputs[0] * neuron.input_scale).clamp(0, neuron.max_count).numpy(), counts.numpy()))

    for name, m in model.named_modules():
        if isinstance(m, ILIF):
            hooks.append(m.register_forward_hook(lambda mod, i, o, n=name: record(n, mod, i, o)))
    try:
        with torch.no_grad():
            y = model(torch.from_numpy(image[None]))
    finally:
        for h in hooks:
            h.remove()
    return (y[0] if isinstance(y, (tuple, list)) else y).numpy(), seen


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """Worst of the box and score parts: max |a - b| / max |b|."""
    return max(float(np.abs(a[:, p] - b[:, p]).max() / np.abs(b[:, p]).max()) for p in (slice(0, 4), slice(4, None)))


def test_onnxruntime_matches_pytorch_on_real_images(exported):
    _, onnx_file, reference, images, _ = exported
    ops = {n.op_type for n in onnx.load(onnx_file).graph.node}
    assert {"Clip", "Round"} <= ops and not any(op.startswith(("aten", "ATen")) or "spiking" in op.lower() for op in ops)
    session, ort_neurons = _session_with_neurons(onnx_file)
    outputs = [o.name for o in session.get_outputs()]
    matched, errors = 0, []
    for image in images:
        torch_out, torch_neurons = _torch_neurons(reference, image)
        # onnxslim merges neurons that read the same tensor (e.g. a head branch and a downsampling)
        assert len(torch_neurons) == 88 and set(ort_neurons) <= {n for n, _, _ in torch_neurons} and len(ort_neurons) > 80
        assert sum(bool(s.any()) for _, _, s in torch_neurons) > 80  # parity is not vacuous: the neurons fire
        values = dict(zip(outputs, session.run(None, {session.get_inputs()[0].name: image[None]})))
        error = _relative_error(values[outputs[0]], torch_out)
        errors.append(error)
        if error <= RTOL:
            matched += 1
            continue
        name, membrane, counts = next((n, u, s) for n, u, s in torch_neurons
                                      if n in ort_neurons and not np.array_equal(values[ort_neurons[n][1]].reshape(s.shape), s))
        differ = values[ort_neurons[name][1]].reshape(counts.shape) != counts
        distance_to_tie = np.abs(membrane - np.floor(membrane) - 0.5)
        assert distance_to_tie[differ].max() < TIE, f"{name}: counts differ away from a rounding tie"
    print(f"onnx vs torch max relative error per image: {['%.1e' % e for e in errors]}")
    assert matched >= len(images) - 2, errors


def _detections(results) -> list[np.ndarray]:
    """Per image ``[n, 6]``: x1, y1, x2, y2, confidence, class."""
    return [r.boxes.data.numpy() for r in results]


def test_onnx_models_predict_the_same_detections(exported):
    path, onnx_file, _, _, files = exported
    kwargs = {"imgsz": 64, "conf": 0.001, "verbose": False}
    torch_dets = _detections(SpikeYOLO(path).predict([str(f) for f in files], **kwargs))
    ours = _detections(SpikeYOLO(onnx_file).predict([str(f) for f in files], **kwargs))
    stock = _detections(YOLO(onnx_file, task="detect").predict([str(f) for f in files], **kwargs))
    assert sum(len(d) for d in torch_dets) >= 3 * len(files)  # enough detections to compare
    equal = 0
    for t, o, s in zip(torch_dets, ours, stock):
        assert np.array_equal(o, s)  # the same onnxruntime session behind both APIs
        if t.shape == o.shape and np.array_equal(t[:, 5], o[:, 5]) and np.allclose(t[:, :5], o[:, :5], rtol=1e-4, atol=1e-3):
            equal += 1
    assert equal >= len(files) - 2  # at most the images with a float32 rounding tie (see the parity test)
