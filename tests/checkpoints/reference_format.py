"""Write checkpoints exactly as the reference fork (ultralytics 8.0.197 + yolo_spikformer) pickled them.

The module tree of one of our models is mirrored with classes that carry the reference's pickled
paths (``ultralytics.nn.modules.yolo_spikformer.*``, ``ultralytics.nn.tasks.DetectionModel``,
``spikingjelly.clock_driven.*``), registered under those names only while saving.
"""

from __future__ import annotations

import sys
import types
from copy import deepcopy
from pathlib import Path

import pytest
import torch
from torch import nn
from ultralytics.nn.modules.block import DFL
from ultralytics.utils import IterableSimpleNamespace
from ultralytics.utils.loss import BboxLoss, v8DetectionLoss
from ultralytics.utils.tal import TaskAlignedAssigner

from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.neuron import ILIF

SPIKFORMER = "ultralytics.nn.modules.yolo_spikformer"
_NAMES = ["BNAndPadLayer", "MS_AllConvBlock", "MS_ConvBlock", "MS_DownSampling", "MS_GetT", "MS_StandardConv",
          "MultiSpike4", "RepConv", "SepConv", "SepRepConv", "SpikeConv", "SpikeConvWithoutBN", "SpikeDFL",
          "SpikeDetect", "SpikeSPPF", "mem_update"]


def _fake_class(module: str, name: str) -> type:
    return type(name, (nn.Module,), {"__module__": module, "__qualname__": name})


FAKE = {name: _fake_class(SPIKFORMER, name) for name in _NAMES}
FAKE_DETECTION_MODEL = _fake_class("ultralytics.nn.tasks", "DetectionModel")
FAKE_LIF = _fake_class("spikingjelly.clock_driven.neuron", "MultiStepLIFNode")
FAKE_SIGMOID = _fake_class("spikingjelly.clock_driven.surrogate", "Sigmoid")
_KEEP_ATTRS = ("i", "f", "type", "np", "nc", "nl", "reg_max", "no", "stride", "inplace", "T", "in_channels",
               "pad_pixels", "names", "yaml", "save")


def _blank(cls: type) -> nn.Module:
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    return module


def _neuron(gen1: bool) -> nn.Module:
    if gen1:
        lif = _blank(FAKE_LIF)
        lif.surrogate_function = _blank(FAKE_SIGMOID)
        lif.surrogate_function.alpha, lif.surrogate_function.spiking = 4.0, True
        lif._memories, lif._memories_rv = {"v": 0.0}, {"v": 0.0}
        lif.tau, lif.decay_input, lif.v_threshold, lif.v_reset, lif.detach_reset = 2.0, True, 1.0, None, True
        lif.backend, lif.lava_s_cale, lif.cupy_fp32_inference = "torch", 128, False
        return lif
    mem = _blank(FAKE["mem_update"])
    mem.act = False
    mem.qtrick = _blank(FAKE["MultiSpike4"])
    return mem


def mirror(module: nn.Module, gen1: bool) -> nn.Module:
    """The reference-class twin of one of our modules (parameters and buffers shared, FP16 later)."""
    if isinstance(module, ILIF):
        return _neuron(gen1)
    if isinstance(module, DFL):
        twin = _blank(FAKE["SpikeDFL"])
    elif isinstance(module, SpikeDetectionModel):
        twin = _blank(FAKE_DETECTION_MODEL)
    elif type(module).__name__ in FAKE:
        twin = _blank(FAKE[type(module).__name__])
    else:  # torch layers and ultralytics Concat as themselves (our layout-keeping subclasses as their parents)
        twin = _blank(next(c for c in type(module).__mro__ if not c.__module__.startswith("spikeyolo.")))
        twin.__dict__.update({k: v for k, v in module.__dict__.items() if not k.startswith("_") and k != "training"})
    for name in _KEEP_ATTRS:
        if name in module.__dict__:
            setattr(twin, name, deepcopy(module.__dict__[name]))
    for name, p in module._parameters.items():
        twin._parameters[name] = None if p is None else nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
    for name, b in module._buffers.items():
        twin._buffers[name] = None if b is None else b.clone()
    for name, child in module._modules.items():
        twin._modules[name] = mirror(child, gen1)
    if isinstance(module, DFL):  # the reference SpikeDFL holds a neuron it never calls
        twin.lif = _neuron(gen1)
    if type(module).__name__ == "SpikeDetect":  # anchors cached by the in-training validation
        twin.shape, twin.anchors, twin.strides = torch.Size([1, module.no, 8, 8]), torch.zeros(2, 84), torch.ones(1, 84)
    return twin


def _criterion(model: nn.Module, nc: int) -> v8DetectionLoss:
    """8.0.197's v8DetectionLoss state (its BboxLoss had no DFLoss child, unlike 8.4's)."""
    bbox_loss = _blank(BboxLoss)
    bbox_loss.reg_max, bbox_loss.use_dfl = 15, True
    loss = object.__new__(v8DetectionLoss)
    loss.__dict__.update(
        bce=nn.BCEWithLogitsLoss(reduction="none"), hyp=IterableSimpleNamespace(box=7.5, cls=0.5, dfl=1.5),
        stride=model.stride.clone(), nc=nc, no=nc + 64, reg_max=16, device=torch.device("cpu"), use_dfl=True,
        assigner=TaskAlignedAssigner(topk=10, num_classes=nc, alpha=0.5, beta=6.0), bbox_loss=bbox_loss,
        proj=torch.arange(16, dtype=torch.float),
    )
    return loss


def reference_tree(model: SpikeDetectionModel, names: dict, gen1: bool = False) -> nn.Module:
    """A reference-format DetectionModel in FP16 carrying ``args`` and a ``criterion`` like 8.0.197's EMA."""
    twin = mirror(model, gen1).half()
    twin.names = names
    twin.args = IterableSimpleNamespace(task="detect", imgsz=640, model="snn_yolov8s.yaml", data="coco.yaml")
    twin.criterion = _criterion(model, len(names))
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def save_reference_checkpoint(
    path: Path, model: SpikeDetectionModel, names: dict, *, ema: SpikeDetectionModel | None, gen1: bool = False
) -> Path:
    """``torch.save`` a training-form (``ema`` given: optimizer, EMA) or stripped-form reference checkpoint."""
    fake_modules = {
        SPIKFORMER: types.SimpleNamespace(**FAKE),
        "spikingjelly.clock_driven": types.ModuleType("spikingjelly.clock_driven"),
        "spikingjelly.clock_driven.neuron": types.SimpleNamespace(MultiStepLIFNode=FAKE_LIF),
        "spikingjelly.clock_driven.surrogate": types.SimpleNamespace(Sigmoid=FAKE_SIGMOID),
    }
    ckpt = {
        "epoch": 7 if ema is not None else -1,
        "best_fitness": 0.45 if ema is not None else None,
        "model": reference_tree(model, names, gen1),
        "ema": reference_tree(ema, names, gen1) if ema is not None else None,
        "updates": 1234 if ema is not None else None,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.937, "params": [0, 1]}]} if ema is not None else None,
        "train_args": {"task": "detect", "model": "snn_yolov8s.yaml", "data": "coco.yaml", "imgsz": 640, "epochs": 300},
        "train_metrics": {"metrics/mAP50(B)": 0.62} if ema is not None else None,
        "train_results": None,
        "date": "2024-03-01T00:00:00",
        "version": "8.0.197",
    }
    with pytest.MonkeyPatch.context() as mp:  # the reference class paths exist only while pickling
        for name, module in fake_modules.items():
            mp.setitem(sys.modules, name, module)
        mp.setattr("ultralytics.nn.tasks.DetectionModel", FAKE_DETECTION_MODEL)
        torch.save(ckpt, path)
    return path
