"""The ultralytics dataset for converted event data: samples ``img`` of shape ``[T, 3, S, S]`` (uint8).

A converted sample (``images/<split>/<name>_<ts>.npy``, ``[T, C_stored, H, W]``, oldest bin first)
is loaded as one ``[H, W, T·3]`` picture so that ultralytics' own letterbox, flip and format
transforms treat all bins alike; after them the channels are split back into ``[T, 3, S, S]`` and
put in the dataset's time order. The default DataLoader collate then gives ``[B, T, 3, S, S]``,
which the network's first layer turns into ``[T, B, 3, S, S]``.

As in the reference, every split is letterboxed to ``imgsz × imgsz`` (long side resized with
bilinear interpolation, no rectangular batches) and the only augmentation is the horizontal flip
(``fliplr``): colour, mosaic and geometric augmentations have no meaning for event frames.
"""

from __future__ import annotations

import glob
import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
import torch
from ultralytics.data import YOLODataset
from ultralytics.data.augment import Compose, Format, LetterBox, RandomFlip
from ultralytics.data.utils import img2label_paths
from ultralytics.utils import LOGGER, colorstr

from .config import representation_of
from .representation import EventRepresentation

__all__ = ["EventDataset", "build_event_dataset", "frames_to_picture", "eval_transforms", "to_time_major",
           "sample_timestamp", "display_frames", "letterbox_to_sensor"]

_TIMESTAMP = re.compile(r"_(\d+)$")
_IGNORED_AUGMENTATIONS = ("mosaic", "mixup", "cutmix", "copy_paste", "hsv_h", "hsv_s", "hsv_v", "degrees",
                          "translate", "scale", "shear", "perspective", "flipud")


def sample_timestamp(path: str | Path) -> int | None:
    """The label timestamp (µs) in a converted sample's name ``<recording>_<ts>.npy``, else ``None``."""
    m = _TIMESTAMP.search(Path(path).stem)
    return int(m[1]) if m else None


class EventDataset(YOLODataset):
    """``YOLODataset`` over converted event samples (see the module docstring).

    The dataset YAML's ``events`` block gives T, the stored channels and the time order. Image
    caching is off: the samples are ``.npy`` files already (ultralytics' disk cache would write its
    ``.npy`` cache over them).
    """

    def __init__(self, *args, data: dict, **kwargs):
        self.representation: EventRepresentation = representation_of(data)
        self.sensor = tuple(data["events"].get("sensor", (240, 304)))
        kwargs.update(cache=None, rect=False)
        super().__init__(*args, data=data, **kwargs)

    def get_img_files(self, img_path: str | list[str]) -> list[str]:
        """The ``.npy`` samples under one or more folders (sorted), after ``fraction``."""
        files = []
        for folder in img_path if isinstance(img_path, list) else [img_path]:
            if not Path(folder).is_dir():
                raise FileNotFoundError(f"{self.prefix}event sample folder {folder} does not exist")
            files += glob.glob(os.path.join(glob.escape(str(folder)), "**", "*.npy"), recursive=True)
        if not files:
            raise FileNotFoundError(f"{self.prefix}no event samples (*.npy) in {img_path}; convert the recordings first")
        files = sorted(files)
        return files[: max(1, round(len(files) * self.fraction))] if self.fraction < 1 else files

    def get_labels(self) -> list[dict]:
        """Read every sample's YOLO label file (``labels/<split>/<name>_<ts>.txt``; empty: no objects).

        Raises:
            FileNotFoundError: a sample without its label file.
            ValueError: a label file with other than 5 columns, an unknown class or coordinates outside [0, 1].
        """
        nc = len(self.data["names"])
        labels = []
        for im_file, label_file in zip(self.im_files, img2label_paths(self.im_files)):
            if not os.path.isfile(label_file):
                raise FileNotFoundError(f"{self.prefix}label file {label_file} of sample {im_file} not found")
            try:
                rows = np.array([line.split() for line in Path(label_file).read_text().splitlines() if line.strip()],
                                dtype=np.float32).reshape(-1, 5)
            except ValueError:
                raise ValueError(f"{label_file}: every line must be 'class cx cy w h'") from None
            if len(rows) and (rows[:, 0].min() < 0 or rows[:, 0].max() >= nc or (rows[:, 0] % 1).any()):
                raise ValueError(f"{label_file}: class ids must be integers in [0, {nc})")
            if len(rows) and not ((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)).all():
                raise ValueError(f"{label_file}: box coordinates must be normalised to [0, 1]")
            labels.append({
                "im_file": im_file, "shape": self.sensor, "cls": rows[:, :1], "bboxes": rows[:, 1:], "segments": [],
                "keypoints": None, "normalized": True, "bbox_format": "xywh",
            })
        return labels

    def load_image(self, i: int, rect_mode: bool = True) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """Sample ``i`` as a ``[h, w, T·3]`` uint8 picture (see :func:`frames_to_picture`), with sizes (H, W), (h, w)."""
        frames = np.load(self.im_files[i])
        picture = frames_to_picture(frames, self.representation, self.imgsz, self.im_files[i])
        return picture, tuple(frames.shape[2:]), picture.shape[:2]

    def build_transforms(self, hyp) -> Compose:
        """Letterbox to imgsz (never upscaling past it), the horizontal flip when training, and ultralytics' Format."""
        ignored = [k for k in _IGNORED_AUGMENTATIONS if self.augment and getattr(hyp, k, 0)]
        if ignored:
            LOGGER.warning(f"{self.prefix}event frames are only flipped horizontally; ignoring {ignored}")
        flip = [RandomFlip(direction="horizontal", p=hyp.fliplr)] if self.augment and hyp.fliplr > 0 else []
        return eval_transforms(self.imgsz, extra=flip)

    def __getitem__(self, index: int) -> dict:
        """A transformed sample whose ``img`` is ``[T, 3, S, S]`` uint8, in the dataset's time order."""
        sample = super().__getitem__(index)
        sample["img"] = to_time_major(sample["img"], self.representation)
        return sample


def frames_to_picture(frames: np.ndarray, representation: EventRepresentation, imgsz: int, name: str = "frames") -> np.ndarray:
    """Stored frames ``[T, C_stored, H, W]`` → one ``[h, w, T·3]`` uint8 picture, long side resized to imgsz (bilinear).

    Channel ``k·3 + c`` holds channel c of bin k (oldest first); grey frames are repeated into 3 channels.

    Raises:
        ValueError: frames that do not match ``representation`` (naming ``name``, e.g. the file).
    """
    rep = representation
    if frames.ndim != 4 or frames.shape[:2] != (rep.T, rep.stored_channels) or frames.dtype != np.uint8:
        raise ValueError(
            f"{name}: sample of shape {frames.shape} ({frames.dtype}); the dataset YAML's events settings "
            f"({rep.kind}, T={rep.T}) need uint8 [{rep.T}, {rep.stored_channels}, H, W]"
        )
    if rep.stored_channels == 1:
        frames = np.repeat(frames, 3, axis=1)
    t, c, h0, w0 = frames.shape
    picture = np.ascontiguousarray(frames.transpose(2, 3, 0, 1).reshape(h0, w0, t * c))
    imgsz = max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz
    r = imgsz / max(h0, w0)
    if r != 1:
        size = (min(math.ceil(w0 * r), imgsz), min(math.ceil(h0 * r), imgsz))
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_LINEAR)
    return picture


def eval_transforms(imgsz: int, extra: list | None = None) -> Compose:
    """Letterbox to ``imgsz × imgsz`` (never upscaling), then ``extra`` transforms, then ultralytics' Format."""
    return Compose([
        LetterBox(new_shape=(imgsz, imgsz), scaleup=False), *(extra or []),
        # bgr=1.0: never reverse the channels (Format's BGR→RGB flip would hit a 3-channel stack, T = 1)
        Format(bbox_format="xywh", normalize=True, batch_idx=True, bgr=1.0),
    ])


def to_time_major(img: torch.Tensor, representation: EventRepresentation) -> torch.Tensor:
    """Formatted ``[T·3, S, S]`` → ``[T, 3, S, S]`` in the representation's time order."""
    img = img.view(representation.T, img.shape[0] // representation.T, *img.shape[1:])
    return img.flip(0) if representation.time_order == "newest_first" else img


def letterbox_to_sensor(boxes: torch.Tensor, ratio_pad: tuple, sensor: tuple[int, int]) -> torch.Tensor:
    """Boxes ``[N, 4]`` x0, y0, x1, y1 in letterboxed pixels → sensor pixels, clipped to the sensor.

    ``ratio_pad`` is the dataset's ``((h_ratio, w_ratio), (pad_left, pad_top))``. Each axis is undone
    with its own ratio: ultralytics' ``scale_boxes`` uses the height ratio for both, which is off by
    the rounding of the resized width (about 1 % at imgsz 64, 0.15 % at 320).
    """
    (rh, rw), (left, top) = ratio_pad
    out = boxes.clone()
    out[:, [0, 2]] = ((out[:, [0, 2]] - left) / rw).clamp(0, sensor[1])
    out[:, [1, 3]] = ((out[:, [1, 3]] - top) / rh).clamp(0, sensor[0])
    return out


def build_event_dataset(cfg, img_path: str, batch: int | None, data: dict, mode: str = "train", stride: int = 32) -> EventDataset:
    """An :class:`EventDataset` configured from ultralytics arguments ``cfg`` (as ``build_yolo_dataset`` does)."""
    return EventDataset(
        img_path=img_path, imgsz=cfg.imgsz, batch_size=batch, augment=mode == "train", hyp=cfg,
        single_cls=cfg.single_cls or False, stride=stride, pad=0.0, prefix=colorstr(f"{mode}: "),
        task=cfg.task, classes=cfg.classes, data=data, fraction=cfg.fraction if mode == "train" else 1.0,
    )


def display_frames(img: torch.Tensor, representation: EventRepresentation) -> torch.Tensor:
    """The newest bin of ``[B, T, 3, S, S]`` frames as grey pictures ``[B, 3, S, S]`` for ultralytics' plots."""
    newest = img[:, 0 if representation.time_order == "newest_first" else -1]
    return newest[:, -1:].expand(-1, 3, -1, -1)  # the last channel is the grey frame in every representation
