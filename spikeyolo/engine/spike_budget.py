"""Spike-budget training: the detection loss plus λ × the synaptic operations of each image.

Every spike is an addition in each convolution it reaches, so the penalty charges a neuron's counts
by the synaptic operations (SOPs) they trigger, not by their number::

    fr_n    = Σ counts_n / (B · C · H' · W')      neuron n's counts per element, summed over the T steps
    fan_n   = MACs_n / (H · W)                     additions per input pixel that one count per element costs
    penalty = Σ_n fr_n · fan_n / 1000              SOPs per image / (H · W) / 1000: kSOP per pixel
    loss    = detection loss + λ · penalty        item ``sop_loss`` = λ · penalty

``fr_n`` is the energy report's firing rate (mean count 0..D per element and step, times T), and
``MACs_n`` the dense MACs per time step of the convolution neuron ``n`` feeds
(:func:`~spikeyolo.analysis.synops.synapse_geometry`, the energy report's own geometry), so
``penalty × H × W × 1000`` is exactly the energy report's ΣSOPs of the same batch at the same size,
for images and for event frames of any T.

Per input pixel, because SOPs grow with the image area: one λ then means the same at 64 and 640 px,
and a larger model pays more for the same firing rate, as it spends more energy (E_AC × 1000 ×
penalty is the energy per pixel, 0.9 nJ per unit at fp32). In thousands, so that λ ≈ 0.03–0.3 is the
useful range: SpikeYOLO-n with the ``firing`` initialisation starts near 90 kSOP per pixel in
training mode (60 in eval mode), so ``sop_loss`` starts at 3–30 against box + cls + dfl ≈ 14.
Dividing by the dense MACs instead (a MAC-weighted mean count, about 0.64) was measured first: at
λ = 1 its gradient norm was 0.29 against the detection loss's 7.5 (a 4-image batch of 64 px), and
in training it moved the penalty from 0.641 to 0.630 in 9 epochs, nothing (ultralytics clips the
total gradient norm to 10, so a term counts by its share of the direction).

Form and schedule, chosen on short runs (SpikeYOLO-n from scratch, ``hard`` shapes, 256 training /
64 validation images of 64 px, bench/learning.py's recipe with 12 epochs and 3 warm-up epochs, one
core each, best.pt measured by ``bench/spike_budget.py``'s report: SOPs and E_SNN at 64 px, fp32):

    init       penalty                                  λ      mAP50-95  mean rate  SOPs/img  E_SNN
    reference  none                                     0      0.0019    0.432      293 M     0.272 mJ
    firing     none                                     0      0.0186    0.639      376 M     0.347 mJ
    firing     SOP-weighted, constant                   0.03   0.0196    0.624      364 M     0.336 mJ
    firing     SOP-weighted, constant (chosen)          0.1    0.0178    0.448      242 M     0.227 mJ
    firing     SOP-weighted, constant                   0.3    0.0045    0.228      106 M     0.104 mJ
    firing     per element (bare spikes), constant      0.1    0.0151    0.424      248 M     0.231 mJ
    firing     SOP-weighted, 0 in warm-up, then ramped  0.1    0.0158    0.499      274 M     0.255 mJ
    firing     SOP-weighted target: max(0, p − 65)      0.3    0.0125    0.433      236 M     0.221 mJ

* SOP-weighted, not per element: with the same total weight (equal penalties at uniform rates),
  weighting by fan-out removed more SOPs (242 against 248 M) while silencing fewer spikes (mean rate
  0.448 against 0.424) and kept more mAP (0.0178 against 0.0151): it quiets the neurons whose spikes
  are expensive and leaves the cheap ones.
* A penalty, not a target: a hinge at 65 kSOP/px reached the same SOPs (236 M) with less mAP
  (0.0125), and a target needs a figure that depends on the model, data and image size.
* Constant from the first step, not ramped after warm-up (0 for 3 epochs, then up to λ over 3): the
  ramp saved less (274 M) and kept no more mAP (0.0158).

With λ = 0.1 the ``firing`` initialisation kept its mAP (0.0178 against 0.0186, within the
epoch-to-epoch noise of such short runs) at fewer SOPs than the reference initialisation (242
against 293 M) and 35 % less E_SNN than without the term; λ = 0.3 costs three quarters of the mAP.
mAP50-95 after 12 epochs is low and noisy (0.0186 and 0.0196 for λ = 0 and 0.03), so read the mAP
column as "kept" or "lost", not to the third digit; the SOP column is not noisy.

The counts enter with their gradient: the straight-through estimator of
:class:`~spikeyolo.nn.neuron.ILIF` passes it to potentials inside [0, D], so the penalty lowers the
BatchNorm outputs that feed neurons. Each neuron's output ``[T, B, C, H, W]`` is reduced to one
scalar in a forward hook (``sum`` keeps nothing for backward, so the saved-counts compression of
:mod:`spikeyolo.nn.saved_counts` is untouched); a hook records its neuron's latest call, which
suits the model's forward (every neuron runs once, the model resets them before and after) and
leaves nothing stale when forwards run without a loss (BatchNorm recalibration, a warm-up).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

import torch
from torch import nn
from ultralytics.utils.loss import v8DetectionLoss

from ..analysis.synops import synapse_geometry
from ..nn.neuron import ILIF
from ..nn.training_keys import training_setting

LOSS_NAME = "sop_loss"
SOP_UNIT = 1000.0  # the penalty counts thousands of synaptic operations per input pixel


def sops_per_pixel(model: nn.Module, imgsz: int | None = None) -> dict[str, float]:
    """Additions per input pixel that each neuron's spikes cost at one count per element: ``MACs_n / imgsz²``.

    Args:
        model: a ``SpikeDetectionModel`` (deep-copied by the geometry, never changed).
        imgsz: the square size to measure at; default twice the largest stride (64). Every
            convolution's output grows with the input area for sizes that are multiples of the
            stride, so the figures hold for any such size (rectangles too), and measuring small is
            cheap.

    Returns:
        Neuron module path (``model.2.Conv.lif1``) → additions per pixel and time step per unit count.
    """
    imgsz = imgsz or 2 * max(int(model.stride.max()), 32)
    return {g.name: g.macs / imgsz**2 for g in synapse_geometry(model, imgsz) if g.spiking}


class SpikeTally:
    """Forward hooks on the I-LIF neurons of ``model`` keeping each one's latest count sum, with its gradient.

    Args:
        model: the model whose neurons to watch.
        names: the neuron module paths to watch, in the order :meth:`rates` returns them.

    The hooks are bound to this object (not closures), so a deep copy of the model together with
    its criterion counts into the copy's tally. Detach them before pickling the model
    (:meth:`detached`): a checkpoint must not reference this class.
    """

    def __init__(self, model: nn.Module, names: list[str]):
        modules = dict(model.named_modules())
        missing = [n for n in names if not isinstance(modules.get(n), ILIF)]
        if missing:
            raise ValueError(f"no I-LIF neuron at {', '.join(missing)}")
        self.neurons = [modules[n] for n in names]
        self._sums: list[torch.Tensor | None] = [None] * len(names)
        self._elements = [0] * len(names)
        self._handles: list = []

    def _record(self, index: int, module: nn.Module, inputs, output: torch.Tensor) -> None:
        self._sums[index] = output.sum(dtype=torch.float32)  # counts are exact in any float dtype
        self._elements[index] = output[0].numel()  # one step of [T, B, C, H, W]: the rate sums over T

    def attach(self) -> SpikeTally:
        """Register the hooks (idempotent)."""
        if not self._handles:
            self._handles = [m.register_forward_hook(partial(self._record, i)) for i, m in enumerate(self.neurons)]
        return self

    def detach(self) -> None:
        """Remove the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextlib.contextmanager
    def detached(self) -> Iterator[None]:
        """The hooks removed inside the block (e.g. while the model is copied for a checkpoint), then restored."""
        attached = bool(self._handles)
        self.detach()
        try:
            yield
        finally:
            if attached:
                self.attach()

    def rates(self) -> torch.Tensor:
        """``[N]`` each neuron's counts per element of its latest call, summed over its T steps, with gradient; then forgets them.

        Raises:
            RuntimeError: a neuron has not run since the last call (the forward ran without the hooks).
        """
        if any(s is None for s in self._sums):
            raise RuntimeError("spike budget: a neuron recorded no counts since the last loss; "
                               "the forward ran before the criterion's hooks were attached")
        rates = torch.stack([s / n for s, n in zip(self._sums, self._elements)])
        self._sums = [None] * len(self._sums)  # free the graph; the next forward records afresh
        return rates


class SpikeBudgetLoss:
    """A detection criterion plus ``λ ×`` thousands of synaptic operations per pixel (see the module docstring).

    Args:
        detection: the model's own criterion (``v8DetectionLoss`` or the reference one); its
            terms and items are kept as they are.
        model: the (unwrapped) model the criterion trains; its neurons get forward hooks now.
        budget: λ > 0.
        fan_out: neuron path → additions per pixel per unit count (default :func:`sops_per_pixel` of ``model``).

    Returns from a call what ultralytics' criteria return: the loss terms ``[4]`` (box, cls, dfl,
    SOP), each multiplied by the batch size, and the detached items with ``sop_loss`` last.
    """

    def __init__(self, detection: v8DetectionLoss, model: nn.Module, budget: float,
                 fan_out: dict[str, float] | None = None):
        fan_out = fan_out or sops_per_pixel(model)
        self.detection, self.budget = detection, budget
        self.tally = SpikeTally(model, list(fan_out)).attach()
        self.fan_out = torch.tensor(list(fan_out.values()), dtype=torch.float64) / SOP_UNIT

    def penalty(self) -> torch.Tensor:
        """Thousands of SOPs per input pixel in the latest forward (mean over its images), a scalar with gradient."""
        rates = self.tally.rates()
        return rates @ self.fan_out.to(rates.device, rates.dtype)

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, items = self.detection(preds, batch)
        sop = self.budget * self.penalty()
        batch_size = self.detection.parse_output(preds)["boxes"].shape[0]  # the detection terms' scale
        return torch.cat((loss, (sop * batch_size).reshape(1).to(loss))), {**items, LOSS_NAME: sop.detach()}


def install_spike_budget(*models: nn.Module) -> list[SpikeBudgetLoss]:
    """Give each of ``models`` (unwrapped; the trained model and its EMA) a :class:`SpikeBudgetLoss`.

    λ is the first model's config ``spike_budget``; at 0 nothing is installed and training is
    exactly as without the option. The criteria are built now, not lazily at the first ``loss()``
    as ultralytics does, so that their hooks see the forward that precedes that call (the validator
    runs the model, then the loss). The fan-outs are measured once, on the first model: the others
    are copies of it. A spike-budget criterion a model already has is replaced, its hooks
    removed.
    """
    budget = training_setting(models[0].yaml, "spike_budget") if models else 0.0
    if not budget:
        return []
    fan_out = sops_per_pixel(models[0])
    for model in models:
        if isinstance(old := getattr(model, "criterion", None), SpikeBudgetLoss):
            old.tally.detach()
        model.criterion = SpikeBudgetLoss(model.init_criterion(), model, budget, fan_out)
    return [model.criterion for model in models]
