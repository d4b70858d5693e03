"""Spike-driven audit: exact operation counts per layer."""

import pytest
import torch

from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.spike.audit import _synapse_adds, audit, format_table, summarise

from firing_weights import perturb_batchnorms


@pytest.mark.parametrize(("k", "stride", "groups"), [(1, 1, 1), (3, 2, 1), (7, 1, 6)])
def test_synapse_additions_are_exact(k, stride, groups):
    conv = torch.nn.Conv2d(6, 12, k, stride, k // 2, groups=groups)
    planes = (torch.rand(3, 6, 9, 9) > 0.6).float()
    brute = torch.nn.functional.conv2d(planes, torch.ones(12, 6 // groups, k, k), None, stride, k // 2, 1, groups)
    assert _synapse_adds(planes, conv) == float(brute.sum())  # one addition per (spike, reached weight)


def test_audit_of_a_firing_model(tmp_path):
    model = SpikeDetectionModel("snn_yolov8n.yaml", nc=3, verbose=False).eval()
    perturb_batchnorms(model)
    rows = audit(model, torch.rand(2, 3, 64, 64))
    assert not model.is_fused()  # audited on a copy
    first = [r for r in rows if r.operation.startswith("first conv")]
    assert len(first) == 1 and first[0].count == 16 * 16 * 48 * 3 * 7 * 7
    assert sum(r.kind == "AC on spikes" for r in rows) == 88 and all(r.count >= 0 for r in rows)
    assert {r.layer for r in rows if r.operation.startswith("residual")} == {2, 4, 6, 8, 12, 16, 19, 22, 25}
    assert {r.operation for r in rows if r.layer == 26} >= {"DFL softmax", "mean over T of the branch outputs"}
    share = summarise(rows)["spike_driven_share_of_synaptic_ops"]
    assert 0.5 < share < 1.0
    assert "spike-driven share of synaptic operations" in format_table(rows)
