"""Prophesee DAT event files (the Gen1 ``*_td.dat`` format): memory-mapped reading by time window, and writing.

Layout of a file::

    % Height 240\\n          ASCII header, one "% key value" line each (at least one line)
    % Width 304\\n
    <type: 1 byte><size: 1 byte = 8>
    8-byte little-endian records: uint32 timestamp t (µs), uint32 word
                                  x = bits 0-13, y = bits 14-27, polarity p = bit 28

Events are read through a memory map: opening a recording reads only its header (plus, by
default, one sequential pass that checks time order and coordinates), and :meth:`DatFile.window`
finds a time window by binary search on the timestamps, so a window costs what it contains, not
what the recording holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_file
from .errors import EventFileError

__all__ = ["EVENT_DTYPE", "GEN1_SENSOR", "DatFile", "write_dat"]

EVENT_DTYPE = np.dtype([("t", "<u4"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])  # decoded events
GEN1_SENSOR = (240, 304)  # (height, width) of the ATIS sensor; the default when a header names no size
EVENT_SIZE = 8
TD_EVENT_TYPE = 0  # change-detection events, the type of every Gen1 recording

_RECORD = np.dtype([("t", "<u4"), ("word", "<u4")])
_X_MASK, _Y_SHIFT, _Y_MASK, _P_SHIFT = 0x3FFF, 14, 0x3FFF, 28
_MAX_HEADER_LINE = 4096  # a longer "line" means this is not a DAT header
_CHECK_CHUNK = 1 << 22  # records per chunk of the opening scan (32 MiB)


def _decode(records: np.ndarray) -> np.ndarray:
    """Records ``(t, word)`` → events ``(t, x, y, p)`` (EVENT_DTYPE), shape [N]."""
    out = np.empty(len(records), dtype=EVENT_DTYPE)
    word = records["word"]
    out["t"] = records["t"]
    out["x"] = word & _X_MASK
    out["y"] = (word >> _Y_SHIFT) & _Y_MASK
    out["p"] = (word >> _P_SHIFT) & 1
    return out


class DatFile:
    """A Prophesee DAT recording, memory-mapped.

    Args:
        path: the ``.dat`` file.
        check: scan all events once when opening: timestamps must never decrease and every event
            must lie on the sensor. Without the scan a corrupt file can give wrong windows silently.

    Attributes:
        header: the header's ``key → value`` strings (``"Height" → "240"`` ...).
        height, width: sensor size in pixels (header values, else Gen1's 240 × 304).
        event_type: the type byte (0 for Gen1 change-detection events).

    Raises:
        EventFileError: missing or malformed header, wrong event size, truncated records,
            timestamps going backwards, or events off the sensor; the message names the file.
    """

    def __init__(self, path: str | Path, check: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise EventFileError(f"{self.path}: event file not found")
        with open(self.path, "rb") as f:
            self.header = self._read_header(f)
            type_and_size = f.read(2)
            self._offset = f.tell()
        if len(type_and_size) < 2:
            raise EventFileError(f"{self.path}: truncated, the file ends before the event type and size bytes")
        self.event_type, size = type_and_size[0], type_and_size[1]
        if size != EVENT_SIZE:
            raise EventFileError(f"{self.path}: event size byte is {size}, a Gen1 DAT file has {EVENT_SIZE}-byte events")
        self.height = self._header_int("Height", GEN1_SENSOR[0])
        self.width = self._header_int("Width", GEN1_SENSOR[1])
        payload = self.path.stat().st_size - self._offset
        if payload % EVENT_SIZE:
            raise EventFileError(
                f"{self.path}: truncated, {payload} bytes of events is not a whole number of {EVENT_SIZE}-byte "
                f"events (the last {payload % EVENT_SIZE} bytes are a cut-off event)"
            )
        n = payload // EVENT_SIZE
        # np.memmap refuses a zero-length map; an empty recording is a valid file with no events.
        self._records = (
            np.memmap(self.path, dtype=_RECORD, mode="r", offset=self._offset, shape=(n,)) if n else np.empty(0, _RECORD)
        )
        if check:
            self._check_events()

    def _read_header(self, f) -> dict[str, str]:
        header: dict[str, str] = {}
        lines = 0
        while f.peek(1)[:1] == b"%":
            line = f.readline(_MAX_HEADER_LINE)
            if not line.endswith(b"\n"):
                raise EventFileError(f"{self.path}: malformed header, line {lines + 1} is not terminated by a newline")
            try:
                text = line.decode("ascii")
            except UnicodeDecodeError:
                raise EventFileError(f"{self.path}: malformed header, line {lines + 1} is not ASCII") from None
            key, _, value = text[1:].strip().partition(" ")
            if key:
                header[key] = value.strip()
            lines += 1
        if not lines:
            raise EventFileError(f"{self.path}: no '%' header, not a Prophesee DAT event file")
        return header

    def _header_int(self, key: str, default: int) -> int:
        if key not in self.header:
            return default
        value = self.header[key]
        if not value.isdigit() or not 0 < int(value) <= _X_MASK + 1:
            raise EventFileError(f"{self.path}: malformed header, '{key}' is '{value}', not a sensor size in pixels")
        return int(value)

    def _check_events(self) -> None:
        previous = -1
        for start in range(0, len(self._records), _CHECK_CHUNK):
            chunk = _decode(self._records[start : start + _CHECK_CHUNK])
            t = chunk["t"].astype(np.int64)
            steps = np.diff(t, prepend=previous)
            if (steps < 0).any():
                i = int(np.argmax(steps < 0))
                before = int(previous if i == 0 else t[i - 1])
                raise EventFileError(
                    f"{self.path}: timestamps go backwards at event {start + i} ({before} µs, then {int(t[i])} µs)"
                )
            off = (chunk["x"] >= self.width) | (chunk["y"] >= self.height)
            if off.any():
                i = int(np.argmax(off))
                raise EventFileError(
                    f"{self.path}: event {start + i} at (x={int(chunk['x'][i])}, y={int(chunk['y'][i])}) lies outside "
                    f"the {self.width}×{self.height} sensor"
                )
            previous = int(t[-1])

    def __len__(self) -> int:
        return len(self._records)

    @property
    def duration_us(self) -> int:
        """Timestamp of the last event in µs (0 for an empty recording)."""
        return int(self._records["t"][-1]) if len(self) else 0

    def index(self, t_us: int) -> int:
        """Index of the first event at or after ``t_us`` (binary search, O(log N) page reads)."""
        return int(np.searchsorted(self._records["t"], max(int(t_us), 0), side="left"))

    def window(self, start_us: int, end_us: int) -> np.ndarray:
        """Events with ``start_us <= t < end_us``, decoded (EVENT_DTYPE), shape [N], in file order."""
        return _decode(self._records[self.index(start_us) : self.index(end_us)])

    def events(self) -> np.ndarray:
        """All events, decoded (EVENT_DTYPE), shape [N]; loads the whole recording."""
        return _decode(self._records[:])


def write_dat(
    path: str | Path,
    events: np.ndarray,
    height: int = GEN1_SENSOR[0],
    width: int = GEN1_SENSOR[1],
    header: dict[str, str] | None = None,
) -> Path:
    """Write events as a Gen1 DAT file (atomically: a finished file or none; mode from the umask).

    Args:
        path: target ``.dat`` file.
        events: structured array with fields ``t`` (µs, non-decreasing), ``x``, ``y``, ``p`` (0/1), shape [N].
        height, width: sensor size written to the header; every event must lie on it.
        header: extra ``key → value`` header lines (written before Height and Width).

    Raises:
        ValueError: unsorted timestamps, events off the sensor, polarity other than 0/1.
    """
    path = Path(path)
    t = np.asarray(events["t"], dtype=np.int64)
    x, y, p = (np.asarray(events[k], dtype=np.int64) for k in ("x", "y", "p"))
    if len(t) and (t.min() < 0 or t.max() > np.iinfo(np.uint32).max):
        raise ValueError(f"{path}: timestamps must fit an unsigned 32-bit µs counter")
    if (np.diff(t) < 0).any():
        raise ValueError(f"{path}: event timestamps must be non-decreasing")
    if len(x) and (x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height):
        raise ValueError(f"{path}: events must lie on the {width}×{height} sensor")
    if len(p) and not np.isin(p, (0, 1)).all():
        raise ValueError(f"{path}: polarity must be 0 or 1")
    lines = {**(header or {}), "Height": str(height), "Width": str(width)}
    records = np.empty(len(t), dtype=_RECORD)
    records["t"] = t
    records["word"] = x | (y << _Y_SHIFT) | (p << _P_SHIFT)
    with atomic_file(path) as f:
        f.write("".join(f"% {k} {v}\n" for k, v in lines.items()).encode("ascii"))
        f.write(bytes((TD_EVENT_TYPE, EVENT_SIZE)))
        f.write(records.tobytes())
    return path
