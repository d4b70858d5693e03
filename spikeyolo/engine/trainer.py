"""Training: the stock ultralytics detection trainer, building a SpikeDetectionModel."""

from __future__ import annotations

from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import RANK
from ultralytics.utils.torch_utils import unwrap_model

from ..nn.model import SpikeDetectionModel


class SpikeDetectionTrainer(DetectionTrainer):
    """``DetectionTrainer`` building a SpikeDetectionModel; ``amp="bf16"`` trains in bfloat16 on any device.

    ultralytics' own bf16 autocast refuses to run on CPU, so with ``amp="bf16"`` the model autocasts
    its forward pass itself (``SpikeDetectionModel.precision``, copied into the EMA and saved with
    the checkpoints) and ultralytics' AMP is switched off for the run (bf16 needs no gradient
    scaler). Checkpoints still record ``amp: bf16`` in their training arguments.
    """

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> SpikeDetectionModel:
        """Build a SpikeDetectionModel for the dataset's classes and channels; load ``weights`` if given."""
        model = SpikeDetectionModel(cfg, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1)
        if weights:
            model.load(weights)
        return model

    def _setup_train(self) -> None:
        self.train_precision = "bf16" if str(self.args.amp).lower() == "bf16" else "fp32"
        if self.train_precision == "bf16":
            self.args.amp = False
        super()._setup_train()  # builds the model if needed, then the EMA copy of it
        for model in (self.model, self.ema.ema if self.ema else None):
            if isinstance(model, nn.Module):
                unwrap_model(model).precision = self.train_precision  # through a DDP wrapper

    def save_model(self):
        """ultralytics' checkpoint, with the ``amp`` argument the user gave (resume trains in bf16 again)."""
        amp = self.args.amp
        if getattr(self, "train_precision", "fp32") == "bf16":
            self.args.amp = "bf16"
        try:
            return super().save_model()  # truthy when written: ultralytics then runs on_model_save
        finally:
            self.args.amp = amp
