"""Shared test helper: BatchNorm statistics that make (nearly) every I-LIF fire.

Freshly initialised SpikeYOLO models leave most neurons silent in eval mode, which would let
comparisons of spike counts pass vacuously.
"""

import torch


def perturb_batchnorms(model: torch.nn.Module, seed: int = 0) -> None:
    """Random running statistics and affine parameters for every BatchNorm2d of ``model``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) * 1.5)
