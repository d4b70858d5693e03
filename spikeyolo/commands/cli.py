"""The ``spikeyolo`` command: ``spikeyolo MODE key=value ...``, the grammar of ultralytics' ``yolo``.

``python -m spikeyolo`` is the same command; ``train.py`` and ``test.py`` are ``spikeyolo train``
and ``spikeyolo val`` under the names the paper's users know.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import audit, checkpoint, energy, events, export, predict, synth, train, val
from .mode import Mode, dispatch

MODES: dict[str, Mode] = {
    m.name: m
    for m in (train.MODE, val.MODE, predict.MODE, export.MODE, energy.MODE, audit.MODE, checkpoint.CONVERT,
              checkpoint.INFO, synth.MODE, events.MODE)
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeyolo`` console script; returns the exit code."""
    return dispatch(MODES, list(sys.argv[1:] if argv is None else argv), "spikeyolo")


def run_script(mode: str, prog: str, argv: Sequence[str] | None = None) -> int:
    """Run one mode as a script of its own (``train.py``, ``test.py``); ``prog`` names it in messages."""
    return MODES[mode](list(sys.argv[1:] if argv is None else argv), prog)
