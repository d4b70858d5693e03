"""Directories written whole or not at all: filled in a hidden sibling, then renamed onto their place."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _install(staging: Path, root: Path, finished_elsewhere: Callable[[], bool]) -> None:
    """Rename the finished ``staging`` directory to ``root``, replacing whatever is there."""
    displaced = None
    if root.is_dir() and not root.is_symlink() and not any(root.iterdir()):
        root.rmdir()  # an empty directory holds nothing worth keeping
    elif root.exists() or root.is_symlink():
        # Moved aside rather than deleted first, so a failed rename can put it back.
        displaced = root.with_name(f".{root.name}.replaced-{uuid.uuid4().hex}")
        os.rename(root, displaced)
    try:
        os.rename(staging, root)
    except OSError:
        if displaced is not None and not root.exists():
            os.rename(displaced, root)
            displaced = None
        if not finished_elsewhere():  # another process may have written the very same directory first
            raise
    finally:
        if displaced is not None:
            _remove(displaced)


def write_directory(root: Path, write: Callable[[Path], None], finished_elsewhere: Callable[[], bool]) -> None:
    """``write(directory)`` into a fresh directory, then rename it to ``root``, replacing what is there.

    A run killed while writing leaves ``root`` as it was: the partial work is in a hidden sibling
    ``.<name>.partial-*`` (on the same file system, so the rename is atomic), never mistaken for
    ``root``. An error removes it. ``finished_elsewhere()`` tells whether ``root``, when the rename
    fails, already holds what ``write`` wrote (from a concurrent run); if not, the error is raised.
    Whether ``root`` may be replaced is the caller's decision, made before.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        write(staging)
        _install(staging, root, finished_elsewhere)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
