"""The neck's parameter-free layers on ``[T, B, C, H, W]``: per-frame upsampling and channel concat.

The YAML names stay those of the reference (``nn.Upsample``, ``Concat``); these subclasses give the
same values while keeping the channels-last layout of every frame (see :mod:`.temporal`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from ultralytics.nn.modules.conv import Concat

from .temporal import cat_channels, over_time


class FrameUpsample(nn.Upsample):
    """``nn.Upsample`` whose 5-D input ``[T, B, C, H, W]`` with scale ``(1, s_h, s_w)`` is upsampled frame by frame.

    Equal to the 3-D upsampling the reference runs (its depth axis is C, scaled by 1), but it keeps
    each frame's memory layout. Any other input or scale is ``nn.Upsample``'s own.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_factor
        if x.dim() != 5 or self.size is not None or not isinstance(scale, tuple) or scale[0] != 1:
            return super().forward(x)
        return over_time(
            lambda f: F.interpolate(f, scale_factor=scale[1:], mode=self.mode, align_corners=self.align_corners,
                                    recompute_scale_factor=self.recompute_scale_factor),
            x,
        )


class ChannelConcat(Concat):
    """ultralytics ``Concat``; on dim 2 of ``[T, B, C, H, W]`` tensors it keeps the channels-last layout."""

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        if self.d == 2 and all(t.dim() == 5 for t in x):
            return cat_channels(x)
        return super().forward(x)
