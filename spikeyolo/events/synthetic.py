"""Synthetic Gen1-format recordings: cars and pedestrians crossing a static scene, seen by a simulated
event camera, with boxes labelled at a few Hz. Used by the tests and the demo in place of the real
(large, licence-bound) Prophesee Gen1 dataset.

The simulated sensor (304 × 240, like Gen1's ATIS) renders the scene's intensity every ``step_us``
with anti-aliased edges, and every pixel whose log intensity moved ``contrast`` (≈ 0.2) or more
away from its last reference level emits that many ON or OFF events, timed uniformly inside the
step; background activity adds uniform noise events. The camera is static, so only moving objects
(and noise) produce events, as on a parked car's camera.

* car (class 0): a body, a cabin with a window and two dark wheels; 50–110 px long; drives
  horizontally at 60–220 px/s.
* pedestrian (class 1): head, torso and two legs that swing while walking; 14–26 px wide and
  2.6–3.2 times as tall; walks at 15–60 px/s.

Each object crosses the whole frame, entering at one side at a random time (some are already in
view at t = 0). Boxes (``x, y, w, h`` of the whole object, possibly sticking out of the frame) are
labelled every ``1 / label_hz`` s for every object with at least a third of its box on the sensor;
each crossing is one track.

Layout written by :func:`generate_recordings` (the Gen1 download's layout)::

    <root>/<split>/synth_<seed>_<index>_td.dat     events
    <root>/<split>/synth_<seed>_<index>_bbox.npy   boxes

``spikeyolo events synth out=DIR`` runs it from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ultralytics.utils import TQDM

from ..utils.staging import holds, write_directory
from .dat import EVENT_DTYPE, GEN1_SENSOR, write_dat
from .labels import BOX_DTYPE, write_boxes

__all__ = ["SyntheticSettings", "simulate_recording", "generate_recordings"]

_MARKER = ".synthetic.json"
_MIN_VISIBLE = 1 / 3  # fraction of a box that must be on the sensor for it to be labelled
_MAX_EVENTS_PER_STEP = 4  # per pixel; a real pixel's refractory period limits bursts likewise


@dataclass(frozen=True)
class SyntheticSettings:
    """Parameters of the simulated recordings (durations in µs, rates in Hz)."""

    duration_us: int = 3_000_000
    label_hz: float = 4.0
    objects: int = 4  # crossings per recording (a third to all of them visible at any time)
    step_us: int = 2_000
    contrast: float = 0.2
    noise_hz_per_pixel: float = 0.2

    def __post_init__(self) -> None:
        """Raises ValueError naming every setting out of its range."""
        ranges = {  # field: (within its range, the range)
            "duration_us": (self.duration_us > 0, "positive (the recording length: seconds × 10⁶)"),
            "label_hz": (self.label_hz > 0, "positive"),
            "objects": (self.objects >= 0, "0 or more"),
            "step_us": (self.step_us > 0, "positive"),
            "contrast": (self.contrast > 0, "positive"),
            "noise_hz_per_pixel": (self.noise_hz_per_pixel >= 0, "0 or more"),
        }
        if bad := [f"{k} must be {rule}, got {getattr(self, k)!r}" for k, (ok, rule) in ranges.items() if not ok]:
            raise ValueError("synthetic recordings: " + "; ".join(bad))


def _coverage(lo: float, hi: float, n: int) -> np.ndarray:
    """Fraction of each of ``n`` unit pixels [i, i+1) covered by the interval [lo, hi), shape [n]."""
    edges = np.arange(n + 1, dtype=np.float32)
    return np.clip(np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1]), 0.0, 1.0)


@dataclass
class _Object:
    cls: int
    w: float
    h: float
    y: float
    x_birth: float  # left edge at t_birth
    t_birth: float  # s
    speed: float  # px/s, signed
    shade: float  # body intensity
    phase: float  # gait phase (pedestrians)

    def left(self, t: float) -> float:
        return self.x_birth + self.speed * (t - self.t_birth)

    def parts(self, t: float) -> list[tuple[float, float, float, float, float]]:
        """Rectangles ``(x0, y0, x1, y1, intensity)`` in drawing order, in pixels."""
        x, y, w, h = self.left(t), self.y, self.w, self.h
        if self.cls == 0:
            body_top = y + 0.35 * h
            wheel = 0.3 * h
            return [
                (x, body_top, x + w, y + h - 0.15 * h, self.shade),
                (x + 0.25 * w, y, x + 0.75 * w, body_top, self.shade),
                (x + 0.32 * w, y + 0.08 * h, x + 0.68 * w, body_top - 0.02 * h, 0.15 * self.shade + 0.05),
                (x + 0.12 * w, y + h - wheel, x + 0.12 * w + wheel, y + h, 0.05),
                (x + 0.88 * w - wheel, y + h - wheel, x + 0.88 * w, y + h, 0.05),
            ]
        swing = 0.18 * w * np.sin(2 * np.pi * 1.6 * t + self.phase)  # legs swing at 1.6 Hz
        head = 0.45 * w
        leg_top = y + 0.55 * h
        return [
            (x + 0.25 * w + swing, leg_top, x + 0.48 * w + swing, y + h, 0.7 * self.shade),
            (x + 0.52 * w - swing, leg_top, x + 0.75 * w - swing, y + h, 0.7 * self.shade),
            (x + 0.1 * w, y + head, x + 0.9 * w, leg_top, self.shade),
            (x + 0.5 * w - head / 2, y, x + 0.5 * w + head / 2, y + head, min(1.0, self.shade + 0.25)),
        ]


def _random_objects(rng: np.random.Generator, settings: SyntheticSettings, height: int, width: int) -> list[_Object]:
    objects = []
    duration = settings.duration_us / 1e6
    for _ in range(settings.objects):
        cls = int(rng.random() < 0.4)
        if cls == 0:
            w = rng.uniform(50, 110)
            h, speed = w * rng.uniform(0.45, 0.6), rng.uniform(60, 220)
        else:
            w = rng.uniform(14, 26)
            h, speed = w * rng.uniform(2.6, 3.2), rng.uniform(15, 60)
        crossing = (width + w) / speed
        t_birth = rng.uniform(-0.8 * crossing, duration - 0.2 * crossing)  # in view for part of the recording
        leftward = rng.random() < 0.5
        y = rng.uniform(0.25 * height, height - h)  # on the road / pavement, below the horizon
        shade = float(rng.choice([rng.uniform(0.05, 0.3), rng.uniform(0.7, 1.0)]))  # contrast with the mid-grey scene
        objects.append(
            _Object(cls, w, h, y, width if leftward else -w, t_birth, -speed if leftward else speed, shade, rng.uniform(0, 6.3))
        )
    return objects


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static mid-grey scene with smooth shading, [H, W] float32 in (0, 1)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scene = 0.45 + 0.1 * np.sin(xx / rng.uniform(20, 60) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(20, 60))
    scene[: int(0.25 * height)] += 0.15  # sky
    return scene.astype(np.float32)


def simulate_recording(
    rng: np.random.Generator, settings: SyntheticSettings = SyntheticSettings(), sensor: tuple[int, int] = GEN1_SENSOR
) -> tuple[np.ndarray, np.ndarray]:
    """One recording: events (EVENT_DTYPE, sorted by t, shape [N]) and boxes (BOX_DTYPE, shape [M])."""
    height, width = sensor
    objects = _random_objects(rng, settings, height, width)
    scene = _background(rng, height, width)
    threshold = settings.contrast * rng.uniform(0.85, 1.15, (height, width)).astype(np.float32)  # pixel mismatch

    def render(t_s: float) -> np.ndarray:
        image = scene.copy()
        for obj in objects:
            for x0, y0, x1, y1, value in obj.parts(t_s):
                cx, cy = _coverage(x0, x1, width), _coverage(y0, y1, height)
                cols, rows = np.nonzero(cx)[0], np.nonzero(cy)[0]
                if len(cols) and len(rows):
                    a = np.outer(cy[rows], cx[cols])
                    region = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
                    region *= 1 - a
                    region += a * value
        return np.log(image + 0.02)

    reference = render(0.0)
    chunks = []
    step = settings.step_us
    noise_per_step = settings.noise_hz_per_pixel * height * width * step / 1e6
    for t0 in range(0, settings.duration_us, step):
        level = render((t0 + step) / 1e6)
        n = np.clip(np.floor(np.abs(level - reference) / threshold), 0, _MAX_EVENTS_PER_STEP).astype(np.int64)
        ys, xs = np.nonzero(n)
        if len(ys):
            k = n[ys, xs]
            up = level[ys, xs] > reference[ys, xs]
            reference[ys, xs] += np.where(up, 1, -1) * k * threshold[ys, xs]
            chunks.append((np.repeat(xs, k), np.repeat(ys, k), np.repeat(up, k).astype(np.uint8), t0))
        m = rng.poisson(noise_per_step)
        chunks.append((rng.integers(0, width, m), rng.integers(0, height, m), rng.integers(0, 2, m).astype(np.uint8), t0))
    events = np.empty(sum(len(c[0]) for c in chunks), dtype=EVENT_DTYPE)
    i = 0
    for xs, ys, ps, t0 in chunks:
        j = i + len(xs)
        events["x"][i:j], events["y"][i:j], events["p"][i:j] = xs, ys, ps
        events["t"][i:j] = t0 + rng.integers(0, step, len(xs))
        i = j
    events = events[np.argsort(events["t"], kind="stable")]
    return events, _label(objects, settings, height, width)


def _label(objects: list[_Object], settings: SyntheticSettings, height: int, width: int) -> np.ndarray:
    rows = []
    period_us = int(round(1e6 / settings.label_hz))
    for ts in range(period_us, settings.duration_us + 1, period_us):
        for track, obj in enumerate(objects):
            x = obj.left(ts / 1e6)
            inside = max(0.0, min(x + obj.w, width) - max(x, 0.0)) * max(0.0, min(obj.y + obj.h, height) - max(obj.y, 0.0))
            if inside >= _MIN_VISIBLE * obj.w * obj.h:
                rows.append((ts, x, obj.y, obj.w, obj.h, obj.cls, 1.0, track))
    return np.array(rows, dtype=BOX_DTYPE)


def generate_recordings(
    root: str | Path,
    splits: dict[str, int] | None = None,
    settings: SyntheticSettings = SyntheticSettings(),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write synthetic recordings in the Gen1 layout under ``root``; returns ``root``.

    Args:
        splits: recordings per split, default ``{"train": 8, "test": 2}``.
        seed: recording ``i`` of split ``s`` uses ``np.random.default_rng([seed, split index, i])``.
        overwrite: replace ``root`` if it holds anything but recordings with exactly these parameters.

    Raises:
        FileExistsError: ``root`` is not empty and holds something else, and ``overwrite`` is False.
        ValueError: a split's number of recordings is negative (before anything is written).
    """
    root = Path(root).expanduser().resolve()
    splits = dict(splits or {"train": 8, "test": 2})
    if bad := [f"{split} must be 0 or more recordings, got {n!r}" for split, n in splits.items() if n < 0]:
        raise ValueError("synthetic recordings: " + "; ".join(bad))
    params = {"splits": splits, "seed": seed, **settings.__dict__}

    def write(directory: Path) -> None:
        jobs = [(s, si, i) for si, (s, n) in enumerate(splits.items()) for i in range(n)]
        for split, si, i in TQDM(jobs, desc="synthetic recordings", disable=not progress):
            events, boxes = simulate_recording(np.random.default_rng([seed, si, i]), settings)
            stem = directory / split / f"synth_{seed}_{i:03d}"
            write_dat(f"{stem}_td.dat", events, header={"Date": "synthetic", "Version": "2"})
            write_boxes(f"{stem}_bbox.npy", boxes)

    if holds(root, _MARKER, params):
        return root
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"{root} is not empty and holds other recordings; choose another folder or overwrite")
    write_directory(root, write, _MARKER, params)  # a killed run leaves root as it was: a rerun starts afresh
    return root
