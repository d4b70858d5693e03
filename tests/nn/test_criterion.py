"""The training criteria (``spikeyolo.nn.criterion``) and how the ``criterion`` key reaches the model.

The loss tests run in float64 on fixed head maps of a 64 px batch (levels 8x8, 4x4, 2x2 for strides
8/16/32): ``criterion: reference`` against the reference fork's loss (ultralytics 8.0.197) written out
below per image from its definition, and against ultralytics' current loss, which differs only where
a box side is shorter than the assigner's enlargement size.
"""

import math
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from short_training import launched_worker, run_keeping_epoch1, train_args
from ultralytics.utils.loss import v8DetectionLoss

from spikeyolo import SpikeYOLO
from spikeyolo.cfg import load_model_yaml
from spikeyolo.engine.trainer import SpikeDetectionTrainer
from spikeyolo.nn import SpikeDetectionModel
from spikeyolo.nn.criterion import ReferenceDetectionLoss

IMGSZ, STRIDES, NC, REG_MAX = 64, (8, 16, 32), 3, 16
HYP = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)  # ultralytics' default gains (8.0.197's too)

# (class, x1, y1, x2, y2) pixel boxes per image; no edge on an anchor centre (multiples of 4), image 2 empty.
# SMALL has boxes with a side under 16 px (6x6 inside the big box, 12x12 in a corner, 10x30);
# LARGE has every side >= 16 px, with overlapping boxes so that some anchors are claimed twice.
SMALL = [[(0, 6, 10, 46, 50), (1, 25, 25, 31, 31), (2, 50, 2, 62, 14)], [(1, 37, 3, 47, 33), (0, 2, 30, 34, 62)], []]
LARGE = [[(0, 6, 10, 46, 50), (2, 30, 2, 62, 26)], [(0, 2, 30, 34, 62), (1, 34, 34, 58, 58)], []]


@contextmanager
def default_float64():
    """Default dtype float64 (ultralytics pads the targets in it); build models outside it (faster)."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@pytest.fixture
def float64():
    with default_float64():
        yield


@pytest.fixture(scope="module")
def model() -> SpikeDetectionModel:
    """An n-scale detector for 3 classes (the criteria read its head's strides, classes and reg_max)."""
    m = SpikeDetectionModel("snn_yolov8n.yaml", nc=NC, verbose=False)
    m.args = HYP
    return m


def head_maps(batch_size: int, seed: int = 0) -> dict:
    """Raw training outputs of the head: ``feats`` [B, 4*16+nc, H, W] per level, ``boxes`` [B, 64, A],
    ``scores`` [B, nc, A].

    The distance logits fall with the bin so that predicted sides are about 1.5 cells: predictions
    then overlap the boxes their anchors lie in well enough that no zero metric (CIoU clamped at 0)
    enters a top 10, where ties would make the choice arbitrary (checked in ``reference_assignment``).
    """
    g = torch.Generator().manual_seed(seed)
    feats = []
    for s in STRIDES:
        n = IMGSZ // s
        falling = 0.6 * torch.arange(REG_MAX).view(1, 1, -1, 1, 1)
        dist = 0.5 * torch.randn(batch_size, 4, REG_MAX, n, n, generator=g) - falling
        cls = torch.randn(batch_size, NC, n, n, generator=g) - 2
        feats.append(torch.cat((dist.reshape(batch_size, 4 * REG_MAX, n, n), cls), 1))
    flat = torch.cat([f.flatten(2) for f in feats], 2)
    return {"boxes": flat[:, : 4 * REG_MAX], "scores": flat[:, 4 * REG_MAX :], "feats": feats}


def labels(gt: list) -> dict:
    """ultralytics' batch labels (image index, class, normalised xywh) for per-image pixel boxes."""
    rows = [(i, c, (x1 + x2) / 2 / IMGSZ, (y1 + y2) / 2 / IMGSZ, (x2 - x1) / IMGSZ, (y2 - y1) / IMGSZ)
            for i, boxes in enumerate(gt) for c, x1, y1, x2, y2 in boxes]
    t = torch.tensor(rows)
    return {"batch_idx": t[:, 0], "cls": t[:, 1:2], "bboxes": t[:, 2:]}


def ciou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of xyxy boxes [..., 4] as ultralytics defines it, eps in the heights, union and diagonal."""
    w1, h1 = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1] + eps
    w2, h2 = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1] + eps
    iw = (torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0])).clamp(min=0)
    ih = (torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1])).clamp(min=0)
    iou = iw * ih / (w1 * h1 + w2 * h2 - iw * ih + eps)
    cw = torch.maximum(b1[..., 2], b2[..., 2]) - torch.minimum(b1[..., 0], b2[..., 0])
    ch = torch.maximum(b1[..., 3], b2[..., 3]) - torch.minimum(b1[..., 1], b2[..., 1])
    centre_dist2 = ((b2[..., 0] + b2[..., 2] - b1[..., 0] - b1[..., 2]) ** 2
                    + (b2[..., 1] + b2[..., 3] - b1[..., 1] - b1[..., 3]) ** 2) / 4
    v = 4 / math.pi**2 * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    alpha = v / (v - iou + (1 + eps))
    return iou - (centre_dist2 / (cw**2 + ch**2 + eps) + v * alpha)


def anchor_grid() -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres [A, 2] in cells of their level (x, y; level by level, row-major) and their strides [A, 1]."""
    centres, strides = [], []
    for s in STRIDES:
        n = IMGSZ // s
        ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
        centres.append(torch.stack((xs.flatten(), ys.flatten()), -1))
        strides.append(torch.full((n * n, 1), float(s)))
    return torch.cat(centres), torch.cat(strides)


def reference_assignment(maps: dict, gt: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ultralytics 8.0.197's task-aligned assignment, one image at a time.

    Candidates of a box: anchors whose centre is more than 1e-9 inside it. Metric: predicted score
    of the box's class ^ 0.5 * CIoU(box, predicted box) ^ 6 (pixels, CIoU clamped at 0). A box takes
    its 10 best candidates; an anchor taken by several boxes goes to the box with the highest CIoU
    (over all boxes). Target score: the metric rescaled per box so that its best anchor gets the
    box's best CIoU among its anchors.

    Returns:
        target scores [B, A, nc], target boxes [B, A, 4] (xyxy pixels), foreground mask [B, A].
    """
    centres, stride = anchor_grid()
    batch = maps["boxes"].shape[0]
    dist = maps["boxes"].transpose(1, 2).reshape(batch, -1, 4, REG_MAX).softmax(-1) @ torch.arange(REG_MAX).double()
    pred_px = torch.cat((centres - dist[..., :2], centres + dist[..., 2:]), -1) * stride  # [B, A, 4]
    scores = maps["scores"].transpose(1, 2).sigmoid()  # [B, A, nc]
    centres_px = centres * stride
    target_scores = torch.zeros_like(scores)
    target_boxes = torch.zeros_like(pred_px)
    fg = torch.zeros(scores.shape[:2], dtype=torch.bool)
    for b, image_boxes in enumerate(gt):
        if not image_boxes:
            continue
        cls = torch.tensor([c for c, *_ in image_boxes])
        boxes = torch.tensor([xyxy for _, *xyxy in image_boxes], dtype=torch.float64)  # [N, 4]
        margins = torch.cat((centres_px[None] - boxes[:, None, :2], boxes[:, None, 2:] - centres_px[None]), -1)
        inside = margins.amin(-1) > 1e-9  # [N, A]
        overlap = torch.where(inside, ciou(boxes[:, None], pred_px[b][None]).clamp(min=0), 0.0)
        metric = torch.where(inside, scores[b][:, cls].T ** 0.5 * overlap**6, 0.0)
        # an anchor of zero metric (CIoU <= 0) inside a box ties with the anchors outside: keep it out of every top 10
        positive, candidates = (metric > 0).sum(1), inside.sum(1)
        assert (positive >= candidates.clamp(max=10)).all(), "fixture: zero-metric anchors would enter a top 10"
        pos = torch.zeros_like(inside)
        for i in range(len(boxes)):
            candidates = inside[i].nonzero()[:, 0]
            pos[i, candidates[metric[i, candidates].argsort(descending=True)[:10]]] = True
        best = overlap.argmax(0)
        for a in (pos.sum(0) > 1).nonzero()[:, 0]:
            pos[:, a] = torch.arange(len(boxes)) == best[a]
        kept_metric, kept_overlap = metric * pos, overlap * pos
        norm = kept_metric * kept_overlap.amax(1, keepdim=True) / (kept_metric.amax(1, keepdim=True) + 1e-9)
        fg[b] = pos.any(0)
        owner = pos.double().argmax(0)[fg[b]]
        target_scores[b, fg[b].nonzero()[:, 0], cls[owner]] = norm.amax(0)[fg[b]]
        target_boxes[b, fg[b]] = boxes[owner]
    return target_scores, target_boxes, fg


def reference_loss(maps: dict, gt: list) -> torch.Tensor:
    """ultralytics 8.0.197's v8DetectionLoss: [box, cls, dfl] with their gains, times the batch size.

    cls: BCE with logits against the target scores, summed, over max(sum of target scores, 1).
    box: (1 - CIoU) in cells of each anchor's level; dfl: the two-bin cross-entropy of each side's
    distance (cells, clamped to [0, 14.99]), averaged over the sides; both weighted by the anchor's
    target score and summed over the foreground, over the same normaliser.
    """
    target_scores, target_boxes, fg = reference_assignment(maps, gt)
    centres, stride = anchor_grid()
    batch = maps["boxes"].shape[0]
    logits = maps["boxes"].transpose(1, 2).reshape(batch, -1, 4, REG_MAX)  # [B, A, 4 sides, 16 bins]
    dist = logits.softmax(-1) @ torch.arange(REG_MAX).double()
    pred = torch.cat((centres - dist[..., :2], centres + dist[..., 2:]), -1)  # [B, A, 4] cells
    normaliser = max(target_scores.sum(), 1)
    cls_loss = F.binary_cross_entropy_with_logits(maps["scores"].transpose(1, 2), target_scores, reduction="sum")
    weight = target_scores.sum(-1)[fg]
    target = target_boxes[fg] / stride.expand(batch, -1, -1)[fg]
    box_loss = ((1 - ciou(pred[fg], target)) * weight).sum()
    anchor = centres.expand(batch, -1, -1)[fg]
    sides = torch.cat((anchor - target[:, :2], target[:, 2:] - anchor), -1).clamp(0, REG_MAX - 1 - 0.01)  # [F, 4]
    left = sides.floor()
    fg_logits = logits[fg].reshape(-1, REG_MAX)
    ce_left = F.cross_entropy(fg_logits, left.flatten().long(), reduction="none").view_as(sides)
    ce_right = F.cross_entropy(fg_logits, left.flatten().long() + 1, reduction="none").view_as(sides)
    dfl = (ce_left * (left + 1 - sides) + ce_right * (sides - left)).mean(-1)
    dfl_loss = (dfl * weight).sum()
    return torch.stack((box_loss * HYP.box, cls_loss * HYP.cls, dfl_loss * HYP.dfl)) / normaliser * batch


def foreground(criterion: v8DetectionLoss, maps: dict, gt: list) -> torch.Tensor:
    """The criterion's foreground mask [B, A]."""
    return criterion.get_assigned_targets_and_loss(maps, labels(gt))[0][0]


@pytest.mark.parametrize("gt", [SMALL, LARGE], ids=["small-boxes", "large-boxes"])
def test_reference_criterion_matches_the_8_0_197_formula(model, float64, gt):
    maps = head_maps(len(gt))
    loss, _ = ReferenceDetectionLoss(model)(maps, labels(gt))
    torch.testing.assert_close(loss, reference_loss(maps, gt), rtol=1e-10, atol=1e-10)
    assert loss.dtype == torch.float64 and (loss > 0).all()
    assert torch.equal(foreground(ReferenceDetectionLoss(model), maps, gt), reference_assignment(maps, gt)[2])


def test_criteria_agree_when_no_box_is_enlarged(model, float64):
    maps = head_maps(len(LARGE))
    ultralytics = v8DetectionLoss(model)
    assert ultralytics.assigner.topk2 == ultralytics.assigner.topk  # topk2 is off in ultralytics' detection loss
    shortest = min(min(x2 - x1, y2 - y1) for boxes in LARGE for _, x1, y1, x2, y2 in boxes)
    assert shortest >= ultralytics.assigner.stride_val
    reference = ReferenceDetectionLoss(model)
    ref_loss, ultra_loss = reference(maps, labels(LARGE))[0], ultralytics(maps, labels(LARGE))[0]
    torch.testing.assert_close(ref_loss, ultra_loss, rtol=0, atol=1e-12)
    assert torch.equal(foreground(reference, maps, LARGE), foreground(ultralytics, maps, LARGE))


def test_criteria_differ_by_the_assignment_of_small_boxes(model, float64):
    maps = head_maps(len(SMALL))
    reference, ultralytics = ReferenceDetectionLoss(model), v8DetectionLoss(model)
    ref_loss, ultra_loss = reference(maps, labels(SMALL))[0].sum(), ultralytics(maps, labels(SMALL))[0].sum()
    assert abs(ref_loss - ultra_loss) > 1e-3 * ref_loss
    ref_fg, ultra_fg = foreground(reference, maps, SMALL), foreground(ultralytics, maps, SMALL)
    assert not torch.equal(ref_fg, ultra_fg)
    # every anchor only ultralytics takes lies inside a box with a side under stride_val, grown to stride_val about
    # its centre (the metric is the same: the enlarged box only widens the candidates)
    centres, stride = anchor_grid()
    centres = centres * stride
    size = ultralytics.assigner.stride_val
    extra = ultra_fg & ~ref_fg
    assert extra.any()
    for b, boxes in enumerate(SMALL):
        grown = torch.zeros(len(centres), dtype=torch.bool)
        for _, x1, y1, x2, y2 in boxes:
            if min(x2 - x1, y2 - y1) < size:
                half_w, half_h = max(x2 - x1, size) / 2, max(y2 - y1, size) / 2
                dx, dy = (centres[:, 0] - (x1 + x2) / 2).abs(), (centres[:, 1] - (y1 + y2) / 2).abs()
                grown |= (dx < half_w) & (dy < half_h)
        assert not (extra[b] & ~grown).any()


def test_yaml_key_selects_the_criterion(model):
    cfg = load_model_yaml("snn_yolov8n.yaml")
    chosen = SpikeDetectionModel({**cfg, "criterion": "reference"}, nc=NC, verbose=False)
    chosen.args = HYP
    with default_float64():
        maps = head_maps(len(SMALL))
        loss, _ = chosen.loss(labels(SMALL), maps)  # the model builds its criterion lazily, as in training
        torch.testing.assert_close(loss, reference_loss(maps, SMALL), rtol=1e-10, atol=1e-10)
    assert type(chosen.criterion) is ReferenceDetectionLoss
    explicit = SpikeDetectionModel({**cfg, "criterion": "ultralytics"}, nc=NC, verbose=False)
    explicit.args = HYP
    for default in (model, explicit):  # the packaged YAML has no key
        assert type(default.init_criterion()) is v8DetectionLoss


@pytest.mark.parametrize("bad", ["refrence", None, "v8"])
def test_bad_criterion_fails_at_construction_naming_the_key(bad):
    with pytest.raises(ValueError, match=r"model config .*snn_yolov8n.yaml: criterion must be one of ultralytics, reference"):
        SpikeDetectionModel({**load_model_yaml("snn_yolov8n.yaml"), "criterion": bad}, verbose=False)


def test_bad_train_criterion_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"criterion must be one of ultralytics, reference, got '8.0.197'"):
        SpikeYOLO("snn_yolov8n.yaml").train(criterion="8.0.197", project=str(tmp_path))
    assert not any(tmp_path.iterdir())


def saved_criterion(checkpoint: Path) -> str | None:
    """The ``criterion`` key of a checkpoint's model config (``None``: absent)."""
    return SpikeYOLO(checkpoint).model.yaml.get("criterion")


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory) -> tuple[SpikeYOLO, Path]:
    """2 epochs from a YAML name with ``criterion="reference"``; the model and a copy of epoch 1's checkpoint."""
    project = tmp_path_factory.mktemp("criterion")
    return run_keeping_epoch1(project, criterion="reference", **train_args(tiny_data, project, "yaml", epochs=2))


def test_train_criterion_from_a_yaml_name(reference_run):
    model, _ = reference_run
    assert type(model.trainer.model.criterion) is ReferenceDetectionLoss  # the loss it trained with
    assert saved_criterion(model.trainer.best) == saved_criterion(model.trainer.last) == "reference"
    assert model.model.yaml["criterion"] == "reference"  # the trained model SpikeYOLO holds afterwards


def test_resume_keeps_the_checkpoint_criterion(reference_run):
    _, resumable = reference_run
    model = SpikeYOLO(resumable)
    model.train(resume=True)
    assert model.trainer.start_epoch == 1
    assert type(model.trainer.model.criterion) is ReferenceDetectionLoss


@pytest.mark.parametrize("criterion, expected", [(None, ReferenceDetectionLoss), ("ultralytics", v8DetectionLoss)])
def test_train_from_a_checkpoint(reference_run, tiny_data, tmp_path, criterion, expected):
    model, _ = reference_run
    tuned = SpikeYOLO(model.trainer.best)
    kwargs = {} if criterion is None else {"criterion": criterion}
    tuned.train(**kwargs, **train_args(tiny_data, tmp_path, "tune"))
    assert type(tuned.trainer.model.criterion) is expected
    assert saved_criterion(tuned.trainer.last) == (criterion or "reference")


def test_ddp_workers_receive_the_criterion(tiny_data, tmp_path, monkeypatch):
    """ultralytics' launcher rebuilds the trainer from ``vars(args)`` but hands over ``trainer.model`` as it is."""
    state, worker = launched_worker(train_args(tiny_data, tmp_path, "ddp"), {"criterion": "reference"}, monkeypatch)
    assert state["trainer"] is SpikeDetectionTrainer and "criterion" not in state["args"]
    assert isinstance(state["model"], SpikeDetectionModel) and state["model"].yaml["criterion"] == "reference"
    assert worker.model is state["model"] and type(worker.model.init_criterion()) is ReferenceDetectionLoss
