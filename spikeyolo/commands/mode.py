"""A mode of the ``spikeyolo`` command: its usage, its run function and the one error wrapper of every mode."""

from __future__ import annotations

import difflib
import pickle
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import yaml

HELP_WORDS = ("help", "-h", "--help")
# What a user's input can raise before or while a mode runs: bad keys and values (UsageError is a
# ValueError), missing or unwritable files (OSError), malformed YAML or datasets (ultralytics raises
# SyntaxError for those), files that are not checkpoints (TypeError, pickle and zip errors). Each
# becomes one line on stderr and exit code 2; anything else is a bug and keeps its traceback.
INPUT_ERRORS = (ValueError, TypeError, OSError, SyntaxError, yaml.YAMLError, pickle.UnpicklingError, zipfile.BadZipFile)


@dataclass(frozen=True)
class Mode:
    """``spikeyolo NAME key=value ...``: a run function, or a group of sub-modes (``spikeyolo events convert``).

    Attributes:
        name: the word after ``spikeyolo``.
        summary: one line for the list of modes.
        usage: examples and keys, printed by ``spikeyolo NAME help`` (``{prog}`` is replaced by the command).
        run: takes the ``key=value`` tokens, returns an exit code (``None`` counts as 0).
        submodes: for a group, its modes by name.
    """

    name: str
    summary: str
    usage: str = ""
    run: Callable[[list[str]], int | None] | None = None
    submodes: Mapping[str, Mode] = field(default_factory=dict)

    def __call__(self, argv: Sequence[str], prog: str) -> int:
        """Run with ``argv`` (the tokens after the mode's name); ``prog`` names the command in messages."""
        if self.submodes:
            return dispatch(self.submodes, argv, prog)
        if argv and argv[0] in HELP_WORDS:
            print(self.usage.format(prog=prog).strip())
            return 0
        try:
            return self.run(list(argv)) or 0
        except INPUT_ERRORS as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2


def overview(modes: Mapping[str, Mode], prog: str) -> str:
    """``usage: PROG MODE [key=value ...]`` and one line per mode."""
    width = max(len(n) for n in modes) + 2
    lines = [f"usage: {prog} MODE [key=value ...]", "", "modes:"]
    lines += [f"  {name:<{width}} {mode.summary}" for name, mode in modes.items()]
    lines += ["", f"'{prog} MODE help' prints a mode's usage and keys."]
    return "\n".join(lines)


def dispatch(modes: Mapping[str, Mode], argv: Sequence[str], prog: str) -> int:
    """Run the mode named by ``argv[0]``; the overview for no mode or ``help``; exit code 2 for an unknown mode."""
    if not argv or argv[0] in HELP_WORDS:
        print(overview(modes, prog))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in modes:
        close = difflib.get_close_matches(name, list(modes), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"modes: {', '.join(modes)}"
        print(f"{prog}: error: unknown mode '{name}'; {hint}", file=sys.stderr)
        return 2
    return modes[name](rest, f"{prog} {name}")
