"""Firing rates over a folder of images, without labels (no mAP), for energy reports on any data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from ultralytics.data.augment import LetterBox
from ultralytics.data.utils import IMG_FORMATS
from ultralytics.utils import LOGGER, TQDM

from .firing import FiringRateMonitor


def list_images(source: str | Path) -> list[Path]:
    """The image files of a folder (sorted), or the single image ``source``.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: it holds no image ultralytics can read (by extension).
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"image source '{source}' not found")
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    images = [p for p in files if p.suffix[1:].lower() in IMG_FORMATS]
    if not images:
        raise ValueError(f"'{source}' holds no images (extensions {', '.join(sorted(IMG_FORMATS))})")
    return images


def load_letterboxed(paths: list[Path], imgsz: int) -> tuple[torch.Tensor | None, list[str]]:
    """The readable images of ``paths`` as ``[N, 3, imgsz, imgsz]`` float RGB in [0, 1], and the unreadable ones.

    Letterboxed as ultralytics validation does (aspect kept, grey 114 border). The tensor is
    ``None`` when no image could be read.
    """
    letterbox = LetterBox((imgsz, imgsz), auto=False)
    frames, skipped = [], []
    for path in paths:
        im = cv2.imread(str(path))
        if im is None:
            skipped.append(str(path))
            continue
        frames.append(letterbox(image=im)[..., ::-1].transpose(2, 0, 1))  # BGR HWC → RGB CHW
    if not frames:
        return None, skipped
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames))).float() / 255, skipped


def measure_rates_on_images(model: nn.Module, source: str | Path, imgsz: int, batch: int = 8) -> FiringRateMonitor:
    """Run ``model`` (a ``SpikeDetectionModel``) on every image of ``source`` and return the filled monitor.

    Images are letterboxed to ``imgsz × imgsz`` (grey 114 border, as ultralytics validation) and
    scaled to [0, 1]; rates accumulate as sums, so memory does not grow with the number of images.
    Unreadable images are skipped with a warning that names them.

    Raises:
        FileNotFoundError, ValueError: as :func:`list_images`; ValueError also if no image could be read.
    """
    images = list_images(source)
    param = next(model.parameters())
    monitor = FiringRateMonitor(model)
    skipped: list[str] = []
    was_training = model.training
    model.eval()
    with monitor, torch.inference_mode():
        for start in TQDM(range(0, len(images), batch), desc=f"firing rates on {len(images)} images", unit="batch"):
            x, unreadable = load_letterboxed(images[start : start + batch], imgsz)
            skipped += unreadable
            if x is not None:
                model(x.to(param.device, param.dtype))
    model.train(was_training)
    if skipped:
        LOGGER.warning(f"skipped {len(skipped)} unreadable image(s): {', '.join(skipped)}")
    if len(skipped) == len(images):
        raise ValueError(f"none of the {len(images)} images in '{source}' could be read")
    return monitor
