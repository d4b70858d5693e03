"""``key=value`` command-line arguments with ultralytics' value parsing and close-match hints for keys."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ultralytics.cfg import DEFAULT_CFG_DICT, parse_key_value_pair

KEYS_URL = "https://docs.ultralytics.com/usage/cfg/"
REQUIRED = object()  # default of a key the user must give


class UsageError(ValueError):
    """A command-line mistake; reported as one line, without a traceback."""


@dataclass(frozen=True)
class Key:
    """One key of a mode that is not an ultralytics mode (``events convert``, ``audit`` ...).

    Attributes:
        default: the value when the key is absent; :data:`REQUIRED` if the user must give it.
        help: one line for the mode's usage.
        type: ``int``, ``float``, ``bool`` or ``str`` to check the parsed value against (``None``: any).
    """

    default: Any
    help: str
    type: type | None = None


def _unknown_key(key: str, valid: Sequence[str], url: str | None) -> str:
    """``unknown key 'epoch' (did you mean 'epochs'?)``, or the valid keys when nothing is close."""
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}' (valid keys: {url or ', '.join(valid)})"


def _pairs(argv: Sequence[str]) -> dict:
    args = {}
    for token in argv:
        if "=" not in token:
            raise UsageError(f"argument '{token}' is not of the form key=value (e.g. epochs=3)")
        try:
            key, value = parse_key_value_pair(token)
        except AssertionError as e:
            raise UsageError(str(e)) from None
        args[key] = value
    return args


def _check_keys(args: Mapping, valid: Sequence[str], url: str | None = None) -> None:
    if unknown := [k for k in args if k not in valid]:
        raise UsageError("; ".join(_unknown_key(k, valid, url) for k in unknown))


def parse_arguments(argv: Sequence[str], extra_keys: Mapping[str, type | None] | None = None) -> dict:
    """Parse ``["epochs=3", "imgsz=320", ...]`` of an ultralytics mode into a dict with typed values.

    Keys must be ultralytics configuration keys or one of ``extra_keys``, which map to the type
    their value must have (``bool``, ``int``, ``float``, ``str``; ``None``: checked by the mode).
    ultralytics checks the types of its own keys when the mode runs. ultralytics' own key check
    (``check_dict_alignment``) is not used because it also prints the whole ``yolo`` help.

    Raises:
        UsageError: an unknown key (naming the closest valid one, as ``yolo`` does), or an extra
            key's value of the wrong type (``spike_driven=yes``).
    """
    extra_keys = extra_keys or {}
    args = _pairs(argv)
    _check_keys(args, [*DEFAULT_CFG_DICT, *extra_keys], KEYS_URL)
    return {k: _typed(k, v, extra_keys.get(k)) for k, v in args.items()}


def _typed(key: str, value: Any, kind: type | None) -> Any:
    if kind is None or value is None:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str:
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"{key}={value!r}: expected {'True or False' if kind is bool else f'a {kind.__name__}'}")
    return value


def parse_options(argv: Sequence[str], keys: Mapping[str, Key]) -> dict:
    """Parse the ``key=value`` arguments of a mode with its own keys; defaults filled in, types checked.

    Raises:
        UsageError: an unknown key (with the closest valid one), a value of the wrong type, or a
            required key missing (named, with its help line).
    """
    given = _pairs(argv)
    _check_keys(given, list(keys))
    missing = [k for k, spec in keys.items() if spec.default is REQUIRED and k not in given]
    if missing:
        raise UsageError("; ".join(f"give {k}=... ({keys[k].help})" for k in missing))
    return {k: _typed(k, given[k], spec.type) if k in given else spec.default for k, spec in keys.items()}


def describe_keys(keys: Mapping[str, Key]) -> str:
    """The keys of a mode as usage lines: ``  key=default   help``."""
    width = max(len(k) for k in keys) + 12
    lines = []
    for k, spec in keys.items():
        shown = f"{k}=..." if spec.default is REQUIRED else f"{k}={spec.default}"
        lines.append(f"  {shown:<{width}} {spec.help}" + (" (required)" if spec.default is REQUIRED else ""))
    return "\n".join(lines)
