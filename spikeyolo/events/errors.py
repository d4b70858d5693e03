"""The one exception of the event pipeline: a bad recording or label file, named in the message."""

from __future__ import annotations


class EventFileError(ValueError):
    """An event (``.dat``) or label (``_bbox.npy``) file that cannot be used; ``str()`` names the file."""
