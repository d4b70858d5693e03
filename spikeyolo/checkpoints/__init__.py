"""Released reference SpikeYOLO checkpoints: restricted import, architecture detection, conversion.

``SpikeYOLO("23M_best.pt")`` uses this automatically; ``spikeyolo convert model=OLD.pt out=NEW.pt``
writes a checkpoint in this package's format.
"""

from .convert import convert_reference_checkpoint, import_reference_model
from .reference import (
    ReferenceCheckpoint,
    ReferenceCheckpointError,
    build_reference_model,
    is_reference_checkpoint,
    load_reference_checkpoint,
)
from .restricted import UnsafeCheckpointError, pickle_globals

__all__ = [
    "ReferenceCheckpoint",
    "ReferenceCheckpointError",
    "convert_reference_checkpoint",
    "import_reference_model",
    "UnsafeCheckpointError",
    "build_reference_model",
    "is_reference_checkpoint",
    "load_reference_checkpoint",
    "pickle_globals",
]
