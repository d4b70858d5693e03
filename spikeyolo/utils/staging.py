"""Directories written whole or not at all: filled in a hidden sibling, marked finished, then renamed onto their place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def holds(root: Path, marker: str, params: dict[str, Any]) -> bool:
    """Whether ``root`` is a directory :func:`write_directory` finished with ``params`` (its ``marker`` holds them)."""
    try:
        return json.loads((root / marker).read_text(encoding="utf-8")) == params
    except (OSError, ValueError):
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _install(staging: Path, root: Path, marker: str, params: dict[str, Any]) -> None:
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
        if not holds(root, marker, params):  # another process may have written the very same directory first
            raise
    finally:
        if displaced is not None:
            _remove(displaced)


def write_directory(root: Path, write: Callable[[Path], None], marker: str, params: dict[str, Any]) -> None:
    """``write(directory)`` into a fresh directory, mark it finished, then rename it to ``root``, replacing what is there.

    The mark is the file ``marker`` holding ``params`` as JSON, written last; :func:`holds` reads it.
    A run killed while writing leaves ``root`` as it was: the partial work is in a hidden sibling
    ``.<name>.partial-*`` (on the same file system, so the rename is atomic), never mistaken for
    ``root``. An error removes it. If the rename fails because a concurrent run finished the same
    directory first, theirs is kept. Whether ``root`` may be replaced is the caller's decision, made before.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        write(staging)
        (staging / marker).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _install(staging, root, marker, params)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
