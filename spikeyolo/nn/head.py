"""SpikeDetect: the ultralytics ``Detect`` head with spiking branches and a mean over time."""

from __future__ import annotations

import math

import torch
from torch import nn
from ultralytics.nn.modules.block import DFL
from ultralytics.nn.modules.head import Detect
from ultralytics.utils.tal import make_anchors

from .conv import SpikeConv, SpikeConvWithoutBN
from .spiking_block import Operation, OperationCounter
from .temporal import layout_grad


class SpikeDetect(Detect):
    """Decoupled YOLOv8 head whose branches are SpikeConv 3×3 → SpikeConv 3×3 → SpikeConvWithoutBN 1×1.

    Inputs are the pyramid levels ``[T, B, C_i, H_i, W_i]``; each branch output is averaged over T,
    giving the stock ``[B, 4·reg_max + nc, H_i, W_i]`` maps, after which everything (anchors, DFL
    decoding, loss, NMS) is ultralytics' own.

    Args:
        nc: number of classes.
        ch: input channels of the pyramid levels.
    """

    legacy = True  # pinned: parse_model-style globals must not flip this head's layout

    def __init__(self, nc: int = 80, ch: tuple[int, ...] | list[int] = ()):
        nn.Module.__init__(self)
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = 16
        self.no = nc + self.reg_max * 4
        self.stride = torch.zeros(self.nl)
        self.level_strides: tuple[int, ...] = ()  # the strides as Python ints, set by SpikeDetectionModel
        c2, c3 = max((16, ch[0] // 4, self.reg_max * 4)), max(ch[0], min(self.nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(SpikeConv(x, c2, 3), SpikeConv(c2, c2, 3), SpikeConvWithoutBN(c2, 4 * self.reg_max, 1))
            for x in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(SpikeConv(x, c3, 3), SpikeConv(c3, c3, 3), SpikeConvWithoutBN(c3, self.nc, 1)) for x in ch
        )
        self.dfl = DFL(self.reg_max)

    def forward_head(
        self, x: list[torch.Tensor], box_head: nn.Module | None = None, cls_head: nn.Module | None = None
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Branch outputs averaged over T: ``boxes [B, 4·reg_max, A]``, ``scores [B, nc, A]``, ``feats``.

        ``feats`` are the per-level T-averaged maps ``[B, no, H_i, W_i]`` (the reference's
        training-mode output), which the stock loss and anchor code read shapes from.
        """
        if box_head is None or cls_head is None:
            return {}
        # under autocast the branches run in bf16/fp16; the loss and the decoding read maps in the weights' dtype
        dtype = self.dfl.conv.weight.dtype
        maps = [
            torch.cat((layout_grad(box_head[i](x[i])).mean(0), layout_grad(cls_head[i](x[i])).mean(0)), 1)
            .to(dtype)
            for i in range(self.nl)
        ]
        bs = maps[0].shape[0]
        flat = torch.cat([m.view(bs, self.no, -1) for m in maps], -1)
        boxes, scores = flat.split((4 * self.reg_max, self.nc), 1)
        return {"boxes": boxes, "scores": scores, "feats": maps}

    def _inference(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """Stock DFL decoding into ``[B, 4 + nc, A]`` boxes (pixels) and scores, outside any autocast."""
        with torch.autocast(x["boxes"].device.type, enabled=False):
            return super()._inference(x)

    def _get_decode_boxes(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """Stock decoding; anchors for a new input shape are built from Python-int strides when known.

        ultralytics passes the ``stride`` tensor, whose values ``make_anchors`` reads one by one:
        under ``torch.compile`` that breaks the graph at every new input shape (each validation
        batch size) and drops the whole forward to eager. ``level_strides`` is set by
        :class:`~spikeyolo.nn.SpikeDetectionModel`; a head used on its own keeps it empty and uses the tensor.
        """
        shape = x["feats"][0].shape
        if self.level_strides and (self.dynamic or self.shape != shape):
            self.anchors, self.strides = (a.transpose(0, 1) for a in make_anchors(x["feats"], self.level_strides, 0.5))
            self.shape = shape
        return super()._get_decode_boxes(x)

    def bias_init(self) -> None:
        """Reference initialisation: box bias 1.0, class bias ``log(5 / nc / (640 / stride)²)``."""
        for a, b, s in zip(self.cv2, self.cv3, self.stride):
            a[-1].conv.bias.data[:] = 1.0
            b[-1].conv.bias.data[: self.nc] = math.log(5 / self.nc / (640 / s) ** 2)

    def audit_operations(self) -> list[tuple[nn.Module, OperationCounter]]:
        """Real-valued work after the spiking branches (the spike-driven audit reads it).

        Per forward: the mean over T adds every branch output ``[T, B, no, H_i, W_i]`` once; DFL
        decoding runs a softmax and an expectation over ``reg_max`` bins for 4 sides per anchor.
        """
        def count(inputs: tuple, output: tuple) -> list[Operation]:
            t_steps = inputs[0][0].shape[0]
            maps = sum(f.numel() for f in output[1]["feats"])
            dfl = output[0].shape[0] * 4 * self.reg_max * output[0].shape[-1]
            return [Operation("mean over T of the branch outputs", "add", maps * t_steps),
                    Operation("DFL softmax", "exp", dfl), Operation("DFL expectation", "MAC", dfl)]
        return [(self, count)]
