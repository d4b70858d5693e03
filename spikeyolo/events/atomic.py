"""Atomic file writing that leaves a finished file or none, with the mode the user's umask gives."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file"]


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Open a hidden scratch file next to ``path`` for binary writing; it replaces ``path`` when the block ends.

    If the block raises, the scratch file is removed and ``path`` is left as it was. The scratch
    file is created with mode 0666 minus the umask, as ``open()`` would: ``tempfile.mkstemp`` creates
    0600, which ``os.replace`` would then carry over to the finished file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
