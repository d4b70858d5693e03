"""Training: the stock ultralytics detection trainer, building a SpikeDetectionModel."""

from __future__ import annotations

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import RANK

from ..nn.model import SpikeDetectionModel


class SpikeDetectionTrainer(DetectionTrainer):
    """``DetectionTrainer`` whose only change is the model class it builds."""

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> SpikeDetectionModel:
        """Build a SpikeDetectionModel for the dataset's classes and channels; load ``weights`` if given."""
        model = SpikeDetectionModel(cfg, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1)
        if weights:
            model.load(weights)
        return model
