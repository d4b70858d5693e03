"""Event windows → stacks of T frames, the network's input ``[T, C, H, W]``.

Every label timestamp ``ts`` (µs) gets the ``window_us`` of events before it, cut into T equal
bins ``[ts − window + k·window//T, ts − window + (k+1)·window//T)``, k = 0 … T−1, oldest first
(the reference's consecutive ``load_delta_t(window // T)`` calls from ``ts − window``). Bins that
start before the recording simply hold fewer events; the reference instead shifted such windows
to ``[0, window)``, which shows the network events from after ``ts``.

Representations (all uint8, stored as ``[T, C_stored, H, W]`` and fed as ``[T, 3, H, W]``):

* ``grey`` (the reference): background 127, an ON event writes 255 and an OFF event 0, the last
  event at a pixel wins. Stored with one channel; the network sees it repeated in 3 channels.
* ``counts``: ON count, OFF count (each ``min(n, count_clip) · 255 / count_clip``, rounded) and
  the grey frame as the third channel, so nothing of the reference input is lost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["REPRESENTATIONS", "TIME_ORDERS", "EventRepresentation", "grey_frame", "count_frames"]

REPRESENTATIONS = ("grey", "counts")
TIME_ORDERS = ("oldest_first", "newest_first")
GREY_BACKGROUND, GREY_ON, GREY_OFF = 127, 255, 0


@dataclass(frozen=True)
class EventRepresentation:
    """How a window of events becomes frames.

    Attributes:
        kind: ``"grey"`` or ``"counts"`` (see the module docstring).
        T: number of time bins (the network's time steps), >= 1.
        window_us: history before each label timestamp, µs (250 000 in the reference).
        count_clip: events per pixel and polarity at which ``counts`` saturates to 255.
        time_order: order in which the bins reach the network: ``oldest_first`` (chronological,
            this package's default) or ``newest_first`` (what the reference trained the released
            Gen1 checkpoint with, by a BGR→RGB flip that hit the time axis).
    """

    kind: str = "grey"
    T: int = 2
    window_us: int = 250_000
    count_clip: int = 8
    time_order: str = "oldest_first"

    def __post_init__(self):
        if self.kind not in REPRESENTATIONS:
            raise ValueError(f"representation '{self.kind}' is not one of {REPRESENTATIONS}")
        if self.time_order not in TIME_ORDERS:
            raise ValueError(f"time_order '{self.time_order}' is not one of {TIME_ORDERS}")
        if int(self.T) < 1 or int(self.window_us) < int(self.T) or int(self.count_clip) < 1:
            raise ValueError(f"need T >= 1, window_us >= T and count_clip >= 1, got {self}")

    @property
    def stored_channels(self) -> int:
        """Channels per bin on disk (1 for grey, 3 for counts)."""
        return 1 if self.kind == "grey" else 3

    def bin_edges(self, ts_us: int) -> np.ndarray:
        """The T + 1 bin edges in µs for a label at ``ts_us`` (may start below 0), shape [T + 1], int64."""
        width = int(self.window_us) // int(self.T)
        return int(ts_us) - int(self.window_us) + width * np.arange(int(self.T) + 1, dtype=np.int64)

    def frames(self, events: np.ndarray, ts_us: int, height: int, width: int) -> np.ndarray:
        """Frames of the window before ``ts_us``: uint8 ``[T, C_stored, H, W]``, oldest bin first.

        Args:
            events: decoded events (fields t, x, y, p), sorted by t, covering at least the window.
        """
        edges = self.bin_edges(ts_us)
        cuts = np.searchsorted(events["t"].astype(np.int64), edges, side="left")
        out = np.empty((int(self.T), self.stored_channels, height, width), dtype=np.uint8)
        for k in range(int(self.T)):
            b = events[cuts[k] : cuts[k + 1]]
            if self.kind == "grey":
                out[k, 0] = grey_frame(b, height, width)
            else:
                out[k] = count_frames(b, height, width, int(self.count_clip))
        return out

    def to_dict(self) -> dict:
        """Plain values for YAML/JSON."""
        return {k: (int(v) if isinstance(v, (int, np.integer)) else v) for k, v in asdict(self).items()}


def grey_frame(events: np.ndarray, height: int, width: int) -> np.ndarray:
    """The reference frame of a bin: uint8 [H, W], 127 where no event, else 255 (ON) / 0 (OFF) of the last event."""
    frame = np.full(height * width, GREY_BACKGROUND, dtype=np.uint8)
    if len(events):
        pixel = events["y"].astype(np.int64) * width + events["x"]
        # The last event at each pixel is the first one in reversed order; NumPy fancy assignment
        # does not promise an order for repeated indices, so pick it explicitly.
        pixels, first = np.unique(pixel[::-1], return_index=True)
        frame[pixels] = np.where(events["p"][::-1][first] > 0, GREY_ON, GREY_OFF)
    return frame.reshape(height, width)


def count_frames(events: np.ndarray, height: int, width: int, clip: int) -> np.ndarray:
    """ON counts, OFF counts (scaled, saturating at ``clip``) and the grey frame: uint8 [3, H, W]."""
    pixel = events["y"].astype(np.int64) * width + events["x"]
    on = events["p"] > 0
    counts = np.stack([np.bincount(pixel[on], minlength=height * width), np.bincount(pixel[~on], minlength=height * width)])
    scaled = np.rint(np.minimum(counts, clip) * (255.0 / clip)).astype(np.uint8).reshape(2, height, width)
    return np.concatenate([scaled, grey_frame(events, height, width)[None]])
