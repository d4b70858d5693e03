"""Spike-driven audit: every operation that is not an addition of a weight on a binary spike.

Runs a model spike-driven on real inputs and counts, per layer and per image: the additions the
binary synapses perform (ACs, exact: one per spike per reached output), the real-valued
multiply-accumulates of the first convolution, bias additions (each holds folded BatchNorms,
applied once per output), residual additions of real values, max-pool comparisons and
upsampling copies of real values, the mean over T and the DFL softmax of the head.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.blocks import MS_AllConvBlock, MS_ConvBlock
from ..nn.conv import MS_DownSampling
from ..nn.head import SpikeDetect
from ..nn.sppf import SpikeSPPF
from .driven import SpikeDrivenConv, spike_driven


@dataclass
class AuditRow:
    """One operation of one module, counted per image.

    Attributes:
        layer: YAML layer index.
        module: module path (``model.6.0.conv1``).
        operation: what is computed (``binary synapse`` , ``first conv`` ...).
        kind: ``AC on spikes`` (spike-driven) or a non-spike-driven kind (``MAC``, ``add``,
            ``compare``, ``copy``, ``exp``).
        count: operations per image.
    """

    layer: int
    module: str
    operation: str
    kind: str
    count: float


def _layer(path: str) -> int:
    parts = path.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def _synapse_adds(planes: torch.Tensor, conv: nn.Conv2d) -> float:
    """Exact additions of a conv on binary ``planes``: each spike adds C_out/groups weights per output it reaches."""
    k = conv.kernel_size
    ones = torch.ones(1, 1, *k, dtype=planes.dtype, device=planes.device)
    reach = F.conv2d(planes.sum(1, keepdim=True), ones, None, conv.stride, conv.padding, conv.dilation)
    return float(reach.sum()) * conv.out_channels / conv.groups


def audit(model: nn.Module, images: torch.Tensor) -> list[AuditRow]:
    """Count the operations of ``model`` (a SpikeDetectionModel) run spike-driven on ``images [B, 3, H, W]``.

    The model is deep-copied, so it is left as it was.
    """
    net = deepcopy(model).eval()
    batch = images.shape[0]
    rows: list[AuditRow] = []

    def add(path: str, operation: str, kind: str, count: float) -> None:
        rows.append(AuditRow(_layer(path), path, operation, kind, count / batch))

    hooks = []
    with spike_driven(net, check=True):
        for path, m in net.named_modules():
            if isinstance(m, SpikeDrivenConv):
                def synapse(mod, inputs, output, p=path):
                    add(p, "binary synapse", "AC on spikes", _synapse_adds(mod.expand(inputs[0]), mod.conv))
                    if mod.conv.bias is not None:
                        add(p, "bias (folded BN) once per output", "add", output.numel())
                hooks.append(m.register_forward_hook(synapse))
            elif isinstance(m, MS_DownSampling) and not hasattr(m, "encode_lif"):
                def first(mod, inputs, output, p=path):
                    c = mod.encode_conv
                    add(p, "first conv on real-valued input", "MAC",
                        output.numel() * c.in_channels // c.groups * c.kernel_size[0] * c.kernel_size[1])
                hooks.append(m.register_forward_hook(first))
            elif isinstance(m, (MS_ConvBlock, MS_AllConvBlock)):
                hooks.append(m.register_forward_hook(
                    lambda mod, i, o, p=path: add(p, "residual additions of real values", "add", 2 * o.numel())))
            elif isinstance(m, SpikeSPPF):
                hooks.append(m.m.register_forward_hook(
                    lambda mod, i, o, p=path: add(p, "max-pool of real values", "compare", o.numel() * (mod.kernel_size ** 2 - 1))))
            elif isinstance(m, nn.Upsample):
                hooks.append(m.register_forward_hook(
                    lambda mod, i, o, p=path: add(p, "upsampling of real values", "copy", o.numel())))
            elif isinstance(m, SpikeDetect):
                def head(mod, inputs, output, p=path):
                    t_steps = inputs[0][0].shape[0]
                    anchors = output[0].shape[-1]
                    maps = sum(f.numel() for f in output[1]["feats"])
                    add(p, "mean over T of the branch outputs", "add", maps * t_steps)
                    add(p, "DFL softmax", "exp", output[0].shape[0] * 4 * mod.reg_max * anchors)
                    add(p, "DFL expectation", "MAC", output[0].shape[0] * 4 * mod.reg_max * anchors)
                hooks.append(m.register_forward_hook(head))
        with torch.no_grad():
            net(images)
    for h in hooks:
        h.remove()
    return rows


def summarise(rows: list[AuditRow]) -> dict:
    """Totals per kind and the share of synaptic operations that are additions on binary spikes.

    Synaptic operations are the binary-synapse ACs plus the first convolution's MACs.
    """
    totals: dict[str, float] = {}
    for r in rows:
        totals[r.kind] = totals.get(r.kind, 0.0) + r.count
    acs = totals.get("AC on spikes", 0.0)
    first = sum(r.count for r in rows if r.operation.startswith("first conv"))
    return {"totals_per_image": totals, "spike_driven_share_of_synaptic_ops": acs / (acs + first) if acs + first else 0.0}


def format_table(rows: list[AuditRow]) -> str:
    """All counted operations aggregated per layer and operation, then totals and the spike-driven share."""
    agg: dict[tuple[int, str, str], float] = {}
    for r in rows:
        agg[(r.layer, r.operation, r.kind)] = agg.get((r.layer, r.operation, r.kind), 0.0) + r.count
    lines = [f"{'layer':>5}  {'operation':<40} {'kind':<13} {'ops/image':>14}"]
    lines += [f"{layer:>5}  {op:<40} {kind:<13} {count:>14,.0f}" for (layer, op, kind), count in sorted(agg.items())]
    s = summarise(rows)
    lines.append("totals: " + ", ".join(f"{k} {v:,.0f}" for k, v in s["totals_per_image"].items()))
    lines.append(f"spike-driven share of synaptic operations: {100 * s['spike_driven_share_of_synaptic_ops']:.2f} %")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m spikeyolo.spike.audit MODEL [--imgsz 640] [--images DIR] [--json OUT]``."""
    parser = argparse.ArgumentParser(prog="python -m spikeyolo.spike.audit", description=__doc__)
    parser.add_argument("model", help="model YAML (e.g. snn_yolov8s.yaml) or checkpoint")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--images", help="folder of images (default: one random image)")
    parser.add_argument("--json", help="write the rows and summary to this JSON file")
    args = parser.parse_args(argv)
    from ..engine.model import SpikeYOLO

    try:
        model = SpikeYOLO(args.model).model
        images = _load_images(args.images, args.imgsz) if args.images else torch.rand(1, 3, args.imgsz, args.imgsz)
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = audit(model, images)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [asdict(r) for r in rows], **summarise(rows)}, indent=1))
    return 0


def _load_images(folder: str, imgsz: int) -> torch.Tensor:
    """Letterboxed images ``[B, 3, imgsz, imgsz]`` in [0, 1] from a folder (unreadable ones are refused)."""
    from ..analysis.image_rates import list_images, load_letterboxed

    images, unreadable = load_letterboxed(list_images(folder), imgsz)
    if unreadable:
        raise ValueError(f"cannot read {len(unreadable)} image(s): {', '.join(unreadable)}")
    return images


if __name__ == "__main__":
    sys.exit(main())
