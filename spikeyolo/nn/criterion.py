"""Training criteria: ultralytics' current detection loss (default) or the reference's.

The reference SpikeYOLO code trained with a fork of ultralytics 8.0.197. Its detection loss is the
one ultralytics still ships (BCE classification over the sum of target scores, CIoU box loss and
DFL, both weighted by the target scores) except for the task-aligned assignment: 8.0.197 takes as
candidates the anchors whose centre lies inside a ground-truth box as given, whereas ultralytics'
current ``TaskAlignedAssigner`` first enlarges a box side shorter than its ``stride_val`` (the
second pyramid stride, 16 px) to that length, so small objects get more (and other) positive
anchors. Its other addition, ``topk2``, is inert in detection (``v8DetectionLoss`` leaves it equal
to ``topk``), and the reference criterion builds its assigner without it. What else changed between
the two versions computes the same values: CIoU's ``alpha`` is the same expression reassociated
(equal up to rounding), DFL is ``log_softmax`` + gather instead of ``cross_entropy``, the empty-
foreground branch and target padding are rewritten without host syncs.

Select with the model YAML key ``criterion`` (:data:`CRITERIA`; absent means ``"ultralytics"``; see
:mod:`.training_keys`). The key ``spike_budget`` adds a penalty on synaptic operations on top of
either; the trainer applies it (``spikeyolo.engine.spike_budget``: it needs the energy accounting,
a floor above this one).
"""

from __future__ import annotations

import torch
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.tal import TaskAlignedAssigner

CRITERIA = ("ultralytics", "reference")
DEFAULT_CRITERION = "ultralytics"


class ReferenceTaskAlignedAssigner(TaskAlignedAssigner):
    """ultralytics 8.0.197's task-aligned assignment: candidate anchors lie inside the boxes as given.

    Everything but the candidate selection is ultralytics' current assigner (alignment metric
    ``score^alpha * CIoU^beta``, top-k, ties between boxes resolved by the highest CIoU, targets
    normalised per box); build it without ``topk2`` so that its second top-k filter stays off.
    """

    def select_candidates_in_gts(
        self, xy_centers: torch.Tensor, gt_bboxes: torch.Tensor, mask_gt: torch.Tensor, eps: float = 1e-9
    ) -> torch.Tensor:
        """Anchors whose centre is more than ``eps`` inside each box, the box not enlarged.

        Args:
            xy_centers: ``[A, 2]`` anchor centres in pixels.
            gt_bboxes: ``[B, N, 4]`` ground-truth boxes, xyxy pixels.
            mask_gt: ``[B, N, 1]`` valid-box mask; unused here (the caller applies it), kept for the signature.
            eps: the margin an anchor centre must clear on every side.

        Returns:
            ``[B, N, A]`` bool mask.
        """
        lt, rb = gt_bboxes.unsqueeze(2).chunk(2, 3)  # [B, N, 1, 2] each
        margins = torch.cat((xy_centers - lt, rb - xy_centers), -1)  # [B, N, A, 4]: left, top, right, bottom
        return margins.amin(-1) > eps


class ReferenceDetectionLoss(v8DetectionLoss):
    """ultralytics' detection loss with the reference's (8.0.197) assignment; select with ``criterion: reference``.

    The assigner's hyperparameters are pinned to 8.0.197's (top-10, ``alpha`` 0.5, ``beta`` 6)
    rather than read from ultralytics' defaults, so that the reference stays the reference if those
    defaults move. The loss formula itself is inherited unchanged (see the module docstring);
    ultralytics' opt-in class weighting (``cls_pw > 0``), absent in 8.0.197, still applies if asked for.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__(model)
        self.assigner = ReferenceTaskAlignedAssigner(topk=10, num_classes=self.nc, alpha=0.5, beta=6.0)
