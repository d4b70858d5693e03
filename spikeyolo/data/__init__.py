"""Datasets bundled with spikeyolo.

`generate_dataset` writes the synthetic shapes detection dataset in ultralytics/YOLO layout;
`default_dataset` returns the cached default copy of it, generating it on first use.
"""

from .synthetic import DEFAULT_CLASSES, DIFFICULTIES, SUPPORTED_SHAPES, Difficulty, default_dataset, generate_dataset

__all__ = ["DEFAULT_CLASSES", "DIFFICULTIES", "SUPPORTED_SHAPES", "Difficulty", "default_dataset", "generate_dataset"]
