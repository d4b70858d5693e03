"""Validation on event data: ultralytics' detection metrics on ``[B, T, 3, S, S]`` batches, plus a record of
every sample's detections in sensor pixels for the Prophesee protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ultralytics.models.yolo.detect import DetectionValidator

from ..events.config import representation_of
from ..events.dataset import build_event_dataset, display_frames, letterbox_to_sensor, sample_timestamp

__all__ = ["EventValidator", "SampleRecord"]


@dataclass
class SampleRecord:
    """One validation sample's detections in sensor pixels: boxes ``[N, 4]`` (x0, y0, x1, y1), scores ``[N]``,
    classes ``[N]``; ``ts_us`` is the label timestamp (µs) from the sample's name."""

    file: str
    ts_us: int | None
    sensor: tuple[int, int]  # (height, width)
    boxes: np.ndarray
    scores: np.ndarray
    cls: np.ndarray


class EventValidator(DetectionValidator):
    """``DetectionValidator`` for event datasets; ``self.records`` holds a :class:`SampleRecord` per sample."""

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        """An :class:`EventDataset` (square letterbox, as in training)."""
        return build_event_dataset(self.args, img_path, batch, self.data, mode=mode, stride=self.stride)

    def init_metrics(self, model) -> None:
        """ultralytics' metrics, and an empty list of records."""
        super().init_metrics(model)
        self.records: list[SampleRecord] = []

    def _prepare_batch(self, si: int, batch: dict) -> dict:
        # ultralytics reads the letterboxed size from img.shape[2:]: give it one bin, [B, 3, S, S]
        return super()._prepare_batch(si, {**batch, "img": batch["img"][:, 0]})

    def update_metrics(self, preds: list[dict], batch: dict) -> None:
        """ultralytics' metrics, then each sample's detections mapped back to sensor pixels (letterbox undone)."""
        super().update_metrics(preds, batch)
        for si, pred in enumerate(preds):
            pbatch = self._prepare_batch(si, batch)
            predn = self._prepare_pred(pred)
            sensor = tuple(int(v) for v in pbatch["ori_shape"])
            boxes = letterbox_to_sensor(predn["bboxes"], pbatch["ratio_pad"], sensor)
            self.records.append(SampleRecord(
                file=str(pbatch["im_file"]), ts_us=sample_timestamp(pbatch["im_file"]), sensor=sensor,
                boxes=boxes.cpu().numpy(), scores=predn["conf"].cpu().numpy(), cls=predn["cls"].cpu().numpy().astype(int),
            ))

    def plot_val_samples(self, batch: dict, ni: int) -> None:
        """Plot the newest bin of each sample with its labels."""
        super().plot_val_samples({**batch, "img": display_frames(batch["img"], representation_of(self.data))}, ni)

    def plot_predictions(self, batch: dict, preds: list[dict], ni: int, max_det: int | None = None) -> None:
        """Plot the newest bin of each sample with its detections."""
        display = {**batch, "img": display_frames(batch["img"], representation_of(self.data))}
        super().plot_predictions(display, preds, ni, max_det)
