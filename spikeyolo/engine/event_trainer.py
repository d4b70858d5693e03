"""Training on event data: the SpikeYOLO trainer with event datasets and the event validator."""

from __future__ import annotations

from copy import copy

from ultralytics.utils.torch_utils import unwrap_model

from ..nn.model import SpikeDetectionModel
from ..nn.time_expansion import MS_GetT
from ..events.config import representation_of
from ..events.dataset import build_event_dataset, display_frames
from .event_validator import EventValidator
from .trainer import SpikeDetectionTrainer


class EventDetectionTrainer(SpikeDetectionTrainer):
    """``SpikeDetectionTrainer`` for datasets with an ``events`` block: batches ``[B, T, 3, S, S]``."""

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> SpikeDetectionModel:
        """The model, its first layer set to the data's T (what a plain image is repeated to, e.g. in export)."""
        model = super().get_model(cfg, weights, verbose)
        first = model.model[0]
        if isinstance(first, MS_GetT):
            first.T = representation_of(self.data).T
        return model

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        """An :class:`EventDataset` (square letterbox in every mode, as the reference)."""
        stride = max(int(unwrap_model(self.model).stride.max()), 32)
        return build_event_dataset(self.args, img_path, batch, self.data, mode=mode, stride=stride)

    def get_validator(self) -> EventValidator:
        """The event validator (also records detections for the Prophesee protocol)."""
        return EventValidator(self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks)

    def plot_training_samples(self, batch: dict, ni: int) -> None:
        """Plot the newest bin of each sample with its boxes."""
        super().plot_training_samples({**batch, "img": display_frames(batch["img"], representation_of(self.data))}, ni)
