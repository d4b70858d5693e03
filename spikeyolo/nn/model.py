"""SpikeDetectionModel: an ultralytics ``DetectionModel`` built by the SpikeYOLO parser."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import torch
from spikingjelly.activation_based import base
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import LOGGER
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.torch_utils import initialize_weights, intersect_dicts

from ..cfg import load_model_yaml
from .criterion import ReferenceDetectionLoss
from .fuse import fuse_spiking_modules, is_fused
from .head import SpikeDetect
from .init import DEFAULT_INIT, apply_init
from .layout import lay_out
from .neuron import ILIF
from .parse import parse_model
from .precision import autocast_for, check_precision
from .saved_counts import counts_saved_as_bytes
from .training_keys import check_training_settings, training_setting


class SpikeDetectionModel(DetectionModel):
    """A spiking YOLO detector; everything but construction and the forward reset is stock.

    Args:
        cfg: model YAML path or packaged name (``"snn_yolov8s.yaml"``) or a parsed dict.
        ch: input channels.
        nc: number of classes, overriding the YAML.
        verbose: print the layer table and summary.
        init: initialisation scheme (:mod:`spikeyolo.nn.init`): ``"firing"`` (default) or
            ``"reference"``; ``None`` takes the YAML's ``init`` key, else the default. Values only:
            the layers and state-dict layout are the same for every scheme.
        precision: ``"fp32"`` (default, exact), ``"bf16"`` or ``"fp16"`` (CUDA): the forward pass
            runs under autocast to that dtype (see :mod:`spikeyolo.nn.precision`); decoded boxes
            and the raw maps the loss reads stay fp32. An attribute: change it any time.

    Input ``[B, ch, H, W]`` images (or ``[B, T, ch, H, W]`` event frames); H and W multiples of 32.
    The YAML keys ``criterion`` (the training loss, see :meth:`init_criterion`), ``spike_budget`` and
    ``bn_recalibrate`` are training settings the model carries (:mod:`spikeyolo.nn.training_keys`).

    Raises:
        ValueError: a training setting in the YAML breaks its rule (the message names the key).
    """

    def __init__(
        self,
        cfg: str | Path | dict = "snn_yolov8n.yaml",
        ch: int = 3,
        nc: int | None = None,
        verbose: bool = True,
        init: str | None = None,
        precision: str = "fp32",
    ):
        torch.nn.Module.__init__(self)  # DetectionModel.__init__ would build with ultralytics' parser
        self.precision = check_precision(precision)
        self.yaml = load_model_yaml(cfg)
        self.yaml["channels"] = ch
        check_training_settings(self.yaml)  # a bad value fails now, not at the first loss call
        if nc and nc != self.yaml["nc"]:
            LOGGER.info(f"Overriding model.yaml nc={self.yaml['nc']} with nc={nc}")
            self.yaml["nc"] = nc
        self.model, self.save = parse_model(deepcopy(self.yaml), ch=ch, verbose=verbose)
        self.names = {i: f"{i}" for i in range(self.yaml["nc"])}
        self.inplace = self.yaml.get("inplace", True)
        head = self.model[-1]
        head.inplace = self.inplace
        self.stride = head.stride = self._probe_strides(ch)
        head.level_strides = tuple(int(s) for s in self.stride)  # Python ints: see SpikeDetect._get_decode_boxes
        head.bias_init()
        initialize_weights(self)
        apply_init(self, init or self.yaml.get("init", DEFAULT_INIT))
        for m in self.modules():
            if isinstance(m, ILIF):
                m.carry_state = False  # reset after every forward anyway (see _predict_once)
        lay_out(self)  # the device's layout (spikeyolo.nn.layout), as MS_GetT lays out the activations
        if verbose:
            self.info()
            LOGGER.info("")

    def _apply(self, fn):
        """Stock (``.to``, ``.cuda()``, ``.half()``...), then the weights laid out for the device they are now on.

        A convolution runs channels-last when its weight is, whatever its input, so weights built
        on the CPU would otherwise keep the CPU's layout on another device (see :mod:`.layout`).
        """
        return lay_out(super()._apply(fn))

    def _probe_strides(self, ch: int, size: int = 256) -> torch.Tensor:
        """Strides of the pyramid levels from a no-grad forward of zeros (BN statistics untouched)."""
        head: SpikeDetect = self.model[-1]
        self.model.eval()
        head.training = True  # the head returns raw maps in training mode
        with torch.no_grad():
            feats = self.forward(torch.zeros(1, ch, size, size))["feats"]
        self.model.train()
        return torch.tensor([size / f.shape[-2] for f in feats])

    def _predict_once(self, x, profile=False, embed=None):
        """Stock forward with every neuron's membrane reset before and after (no state leaks out).

        Raises:
            ValueError: H or W is not a multiple of the largest stride (32): the pyramid levels
                would not line up at the concatenations.
        """
        self._check_input_size(x)
        neurons = self.reset_neurons()
        try:
            with autocast_for(self.precision, x.device.type), counts_saved_as_bytes():
                return super()._predict_once(x, profile, embed)
        finally:
            for m in neurons:
                m.reset()

    def _check_input_size(self, x: torch.Tensor) -> None:
        # Python ints, not self.stride: reading a tensor's value would break a torch.compile graph;
        # empty only during __init__'s stride probe, whose input size fits any stride
        stride = max(self.model[-1].level_strides, default=1)
        if x.shape[-1] % stride or x.shape[-2] % stride:
            raise ValueError(
                f"input size {tuple(x.shape[-2:])} is not a multiple of the model stride {stride}; "
                f"resize or letterbox to e.g. {tuple(-(-d // stride) * stride for d in x.shape[-2:])}"
            )

    def is_fused(self) -> bool:
        """True once :meth:`fuse` has folded every BatchNorm and factorised conv."""
        return is_fused(self)

    def fuse(self, verbose: bool = True, imgsz: int = 640) -> SpikeDetectionModel:
        """Re-parameterise for inference (see :mod:`spikeyolo.nn.fuse`); a fused model is returned as is.

        ultralytics' AutoBackend calls this for val/predict/export, so those run fused.
        """
        if not self.is_fused():
            fuse_spiking_modules(self)
            lay_out(self)  # the folded convolutions are new tensors
            self.info(verbose=verbose, imgsz=imgsz)
        return self

    def load(self, weights, verbose: bool = True) -> None:
        """Transfer every tensor whose name and shape match (a checkpoint dict or a model).

        ultralytics' version rebuilds a class branch with a plain ``nn.Conv2d`` when the class
        count differs, which cannot run on ``[T, B, C, H, W]``; here mismatching tensors (a new
        class count) simply keep their fresh initialisation.
        """
        model = (weights.get("ema") or weights["model"]) if isinstance(weights, dict) else weights
        if getattr(model, "is_fused", lambda: False)():
            raise ValueError("these weights are fused for inference; train from the unfused checkpoint")
        csd = intersect_dicts(model.float().state_dict(), self.state_dict())
        self.load_state_dict(csd, strict=False)
        names = getattr(model, "names", None)
        if len(csd) == len(self.state_dict()) and names and self.names == {i: str(i) for i in range(len(self.names))}:
            self.names = dict(names)
        if verbose:
            LOGGER.info(f"Transferred {len(csd)}/{len(self.state_dict())} items from pretrained weights")

    def reset_neurons(self) -> list[base.MemoryModule]:
        """Reset every spikingjelly memory module of the model; returns them.

        Not ``functional.reset_net``: it caches each network's neurons in a process-wide weak-key
        dict that ``torch.compile`` guards on, and once another model of the process is freed the
        compiled training step fails in that guard (``StopIteration``; seen in
        tests/nn/test_compile.py after the other nn tests). The walk costs 0.33 ms more per forward
        (bench/spikingjelly_parity.py: 385 against 51 µs for two resets of SpikeYOLO-n).
        """
        memories = [m for m in self.modules() if isinstance(m, base.MemoryModule)]
        for m in memories:
            m.reset()
        return memories

    def init_criterion(self) -> v8DetectionLoss:
        """The training loss the YAML's ``criterion`` key names (:mod:`spikeyolo.nn.criterion`).

        ``"ultralytics"`` (or no key) is whatever ultralytics' ``DetectionModel`` builds, so the
        default follows the installed ultralytics; ``"reference"`` is the 8.0.197 assignment the
        reference code trained with. ultralytics calls this lazily, at the first ``loss()``.
        ``spike_budget`` is not applied here: the trainer wraps this loss before the first forward
        (``spikeyolo.engine.spike_budget``), as its weights come from the energy accounting.
        """
        if training_setting(self.yaml, "criterion") == "reference":
            return ReferenceDetectionLoss(self)
        return super().init_criterion()
