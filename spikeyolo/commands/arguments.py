"""``key=value`` command-line arguments with ultralytics' parsing and key checking."""

from __future__ import annotations

from collections.abc import Sequence

from ultralytics.cfg import DEFAULT_CFG_DICT, check_dict_alignment, parse_key_value_pair


class UsageError(ValueError):
    """A command-line mistake; reported without a traceback."""


def parse_arguments(argv: Sequence[str], extra_keys: Sequence[str] = ()) -> dict:
    """Parse ``["epochs=3", "imgsz=320", ...]`` into a dict with typed values.

    Keys must be ultralytics configuration keys or one of ``extra_keys``; an unknown key raises
    :class:`UsageError` with ultralytics' close-match suggestion.
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
    try:
        check_dict_alignment(DEFAULT_CFG_DICT, args, allowed_custom_keys=set(extra_keys))
    except SyntaxError as e:
        raise UsageError(str(e)) from None
    return args
