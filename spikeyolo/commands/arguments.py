"""``key=value`` command-line arguments with ultralytics' parsing and key checking."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ultralytics.cfg import DEFAULT_CFG_DICT, parse_key_value_pair

KEYS_URL = "https://docs.ultralytics.com/usage/cfg/"


class UsageError(ValueError):
    """A command-line mistake; reported without a traceback."""


def _unknown_key(key: str, valid: Sequence[str]) -> str:
    """``unknown key 'epoch' (did you mean 'epochs'?)``, or the keys' documentation when nothing is close."""
    close = difflib.get_close_matches(key, valid, n=1)
    return f"unknown key '{key}' " + (f"(did you mean '{close[0]}'?)" if close else f"(valid keys: {KEYS_URL})")


def parse_arguments(argv: Sequence[str], extra_keys: Sequence[str] = ()) -> dict:
    """Parse ``["epochs=3", "imgsz=320", ...]`` into a dict with typed values.

    Keys must be ultralytics configuration keys or one of ``extra_keys``; an unknown key raises
    :class:`UsageError` naming the closest valid key, as ``yolo`` does. ultralytics' own check
    (``check_dict_alignment``) is not used because it also prints the whole ``yolo`` help.
    """
    args = {}
    for token in argv:
        if "=" not in token:
            raise UsageError(f"argument '{token}' is not of the form key=value (e.g. epochs=3)")
        try:
            key, value = parse_key_value_pair(token)
        except AssertionError as e:
            raise UsageError(str(e)) from None
        args[key] = value
    valid = [*DEFAULT_CFG_DICT, *extra_keys]
    if unknown := [k for k in args if k not in valid]:
        raise UsageError("; ".join(_unknown_key(k, valid) for k in unknown))
    return args
