"""Spike-driven audit: every operation that is not an addition of a weight on a binary spike.

Runs a model spike-driven on real inputs and counts, per layer and per image: the additions the
binary synapses perform (ACs, exact: one per spike per reached output), bias additions (each
holds folded BatchNorms, applied once per output) and upsampling copies of real values; every
other operation is declared by the module performing it (``audit_operations``, see
:class:`~spikeyolo.nn.spiking_block.SpikingBlock`): the real-valued multiply-accumulates of the
first convolution, residual additions and max-pool comparisons of real values, the mean over T
and the DFL softmax of the head.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.spiking_block import DeclaresOperations, OperationCounter
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

    def declared(path: str, counter: OperationCounter):
        def hook(mod, inputs, output) -> None:  # returns None: a forward hook's result would replace the output
            for op in counter(inputs, output):
                add(path, op.operation, op.kind, op.count)
        return hook

    hooks = []
    with spike_driven(net, check=True):
        for path, m in net.named_modules():
            if isinstance(m, SpikeDrivenConv):
                def synapse(mod, inputs, output, p=path):
                    add(p, "binary synapse", "AC on spikes", _synapse_adds(mod.expand(inputs[0]), mod.conv))
                    if mod.conv.bias is not None:
                        add(p, "bias (folded BN) once per output", "add", output.numel())
                hooks.append(m.register_forward_hook(synapse))
            elif isinstance(m, nn.Upsample):
                hooks.append(m.register_forward_hook(
                    lambda mod, i, o, p=path: add(p, "upsampling of real values", "copy", o.numel())))
            elif isinstance(m, DeclaresOperations):
                hooks += [observed.register_forward_hook(declared(path, counter))
                          for observed, counter in m.audit_operations()]
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
