"""Detection on event frames outside the validator, with exactly the validator's input path and time order.

Frames go through :func:`frames_to_picture`, the letterbox and Format of the dataset and
:func:`to_time_major`, so a sample reaches the network in the same ``[T, 3, S, S]`` form and time
order as in training and validation; detections come back in sensor pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ultralytics.utils import nms
from ultralytics.utils.instance import Instances

from ..events.config import representation_of
from ..events.dat import DatFile
from ..events.dataset import eval_transforms, frames_to_picture, letterbox_to_sensor, to_time_major
from ..events.representation import EventRepresentation

__all__ = ["prepare_input", "predict_frames", "predict_recording"]


def prepare_input(frames: np.ndarray, representation: EventRepresentation, imgsz: int) -> tuple[torch.Tensor, tuple]:
    """Stored frames ``[T, C_stored, H, W]`` → network input ``[T, 3, S, S]`` (uint8) and the letterbox ``ratio_pad``."""
    picture = frames_to_picture(frames, representation, imgsz)
    h0, w0 = frames.shape[2:]
    label = {
        "img": picture, "cls": np.zeros((0, 1), np.float32), "ori_shape": (h0, w0), "resized_shape": picture.shape[:2],
        "ratio_pad": (picture.shape[0] / h0, picture.shape[1] / w0),
        "instances": Instances(np.zeros((0, 4), np.float32), np.zeros((0, 1000, 2), np.float32), bbox_format="xywh",
                               normalized=True),
    }
    out = eval_transforms(imgsz)(label)
    return to_time_major(out["img"], representation), out["ratio_pad"]


@torch.no_grad()
def predict_frames(
    model, samples: Sequence[np.ndarray | str | Path], data: str | dict, imgsz: int = 320, conf: float = 0.25,
    iou: float = 0.7, max_det: int = 300,
) -> list[np.ndarray]:
    """Detect objects in stored frame stacks (arrays or converted ``.npy`` samples).

    Args:
        model: a :class:`~spikeyolo.SpikeYOLO` (re-parameterised in place for inference).
        data: the event dataset YAML (its ``events`` settings: representation, T, time order).

    Returns:
        Per sample, ``[N, 6]`` float32 rows ``x0, y0, x1, y1, score, class`` in sensor pixels.
    """
    representation = representation_of(data)
    # fused in place, as ultralytics' validator and predictor do, so that all three compute the same thing
    network = model.model.fuse(verbose=False).eval()
    device = next(network.parameters()).device
    results = []
    for sample in samples:
        frames = np.load(sample) if isinstance(sample, (str, Path)) else sample
        img, ratio_pad = prepare_input(frames, representation, imgsz)
        x = img[None].to(device).float() / 255  # [1, T, 3, S, S]
        preds = network(x)
        det = nms.non_max_suppression(preds, conf, iou, max_det=max_det)[0]
        det[:, :4] = letterbox_to_sensor(det[:, :4], ratio_pad, tuple(frames.shape[2:]))
        results.append(det[:, :6].cpu().numpy())
    return results


def predict_recording(
    model, recording: str | Path | DatFile, timestamps_us: Sequence[int], data: str | dict, **kwargs
) -> list[np.ndarray]:
    """Detect objects in a raw ``.dat`` recording at the given timestamps (µs), each from the events before it.

    The frames are built exactly as the conversion builds them (the data's representation), so a
    timestamp that carries a label gives the same input as that label's converted sample.
    ``kwargs`` go to :func:`predict_frames` (imgsz, conf, iou, max_det).

    Returns:
        Per timestamp, ``[N, 6]`` float32 rows ``x0, y0, x1, y1, score, class`` in sensor pixels.

    Raises:
        EventFileError: a bad recording (the message names the file).
    """
    representation = representation_of(data)
    dat = recording if isinstance(recording, DatFile) else DatFile(recording)
    stacks = []
    for ts in timestamps_us:
        edges = representation.bin_edges(int(ts))
        stacks.append(representation.frames(dat.window(int(edges[0]), int(edges[-1])), int(ts), dat.height, dat.width))
    return predict_frames(model, stacks, data, **kwargs)
