"""Synthetic shapes detection dataset, the default training data bundled with spikeyolo.

Each image shows filled shapes (circle, rectangle, triangle, cross, ...) of random colour, size,
aspect ratio and rotation on a textured background. Classes differ by form only: colours are drawn
per object, so a detector has to learn shape. Two named difficulties (:data:`DIFFICULTIES`):

* ``"easy"`` (the bundled default, what ``make demo`` trains on): 1-3 objects of at least 25 % of
  the image side on a smooth background, little sensor noise;
* ``"hard"``: 1-6 objects down to 8 % of the side on a cluttered background (soft blobs and thin
  lines a detector must learn to ignore), more noise; ``bench/learning.py`` measures on both.

The dataset is written in the ultralytics/YOLO layout::

    <root>/data.yaml
    <root>/images/{train,val}/000000.jpg ...
    <root>/labels/{train,val}/000000.txt ...   # one "cls cx cy w h" line per object, normalised

Every image is rendered from its own generator ``np.random.default_rng([seed, split, index])``, so
the output is reproducible and independent of rendering order. A dataset is written once into a
hidden sibling directory and renamed into place when finished; the ``.complete`` marker inside it
holds the generation parameters and is what later calls check before reusing it.

``spikeyolo synth out=DIR`` generates one from the command line.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from ..utils.staging import holds, write_directory

__all__ = ["DEFAULT_CLASSES", "DIFFICULTIES", "SUPPORTED_SHAPES", "Difficulty", "default_dataset", "generate_dataset"]

# Bump whenever rendering changes, so cached default datasets from older code are not reused.
GENERATOR_VERSION = 1

DEFAULT_CLASSES: tuple[str, ...] = ("circle", "rectangle", "triangle", "cross")


@dataclass(frozen=True)
class Difficulty:
    """What makes the images hard to read.

    Attributes:
        clutter: draw soft blobs and thin lines over the background (distractors with edges).
        min_size_fraction: smallest object extent (longer box side) relative to the image side;
            sizes are log-uniform up to half the side.
        max_objects: each image gets 1..max_objects objects (fewer when placements fail).
        max_noise: standard deviation of the Gaussian sensor noise is drawn from [max_noise / 4, max_noise].
    """

    clutter: bool
    min_size_fraction: float
    max_objects: int
    max_noise: float


# easy: smooth backgrounds and large objects, what SpikeYOLO-n learns to detect within the six minutes of
# `make demo` (bench/demo_variants.py: with objects down to 15 %, up to 4 of them, the same 20-epoch run
# reached mAP50 0.26 against 0.29). hard: clutter and small objects, for bench/learning.py.
DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(clutter=False, min_size_fraction=0.25, max_objects=3, max_noise=4.0),
    "hard": Difficulty(clutter=True, min_size_fraction=0.08, max_objects=6, max_noise=8.0),
}

# Parameters of the dataset returned by default_dataset(), the data of `make demo`. Three classes of
# distinct outline: after 11 epochs of the demo recipe (bench/demo_variants.py, docs/training.md)
# rectangles (mAP50 0.19) and triangles (0.20-0.26) were the worst-detected shapes, stars 0.62.
_DEFAULT_SETTINGS: dict[str, Any] = {
    "n_train": 400, "n_val": 100, "imgsz": 128, "seed": 0, "classes": ("circle", "cross", "star"), "difficulty": "easy",
}

_SPLITS = ("train", "val")
_MARKER = ".complete"
_JPEG_QUALITY = 95

_MAX_SIZE_FRACTION = 0.5  # object extent (longer bbox side) relative to the image side
_MIN_SIZE_PX = 6.0  # below this a shape's form is no longer recognisable
_MAX_OUTSIDE_FRACTION = 0.15  # how far an object's box may stick out of the frame, per side
_PLACEMENT_TRIES = 10
# An object counts as occupying a pixel once it covers at least half of it (anti-aliased edges).
_COVER_THRESHOLD = 128
_MIN_OBJECT_PIXELS = 12
# Placements that would hide more than 60% of an earlier object are rejected, so every labelled
# object stays recognisable and every visible object is labelled.
_MIN_VISIBLE_FRACTION = 0.4
_MIN_CONTRAST = 80.0  # Euclidean BGR distance between an object colour and what it is drawn over

# Vertex coordinates are passed to OpenCV as fixed point with this many fractional bits, so shapes
# are placed with sub-pixel precision.
_SHIFT = 4

# ---------------------------------------------------------------------------------------------------------------------
# Shapes: outlines in unit coordinates (extent about [-1, 1]), later stretched, rotated and scaled.
# ---------------------------------------------------------------------------------------------------------------------

# A part is a closed polygon (K, 2) and the mask value it is filled with; 0 cuts holes.
_Part = tuple[np.ndarray, int]


def _unit_circle(n_vertices: int = 64) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * np.pi, n_vertices, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _circle(rng: np.random.Generator) -> list[_Part]:
    return [(_unit_circle(), 255)]


def _ring(rng: np.random.Generator) -> list[_Part]:
    inner = rng.uniform(0.45, 0.65)
    return [(_unit_circle(), 255), (inner * _unit_circle(), 0)]


def _rectangle(rng: np.random.Generator) -> list[_Part]:
    return [(np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]), 255)]


def _triangle(rng: np.random.Generator) -> list[_Part]:
    # Jittered vertices of an equilateral triangle: varied, but never close to degenerate.
    angles = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-15.0, 15.0, 3))
    radii = rng.uniform(0.8, 1.0, 3)
    return [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), 255)]


def _cross(rng: np.random.Generator) -> list[_Part]:
    t = rng.uniform(0.22, 0.38)  # half the arm thickness
    outline = [(t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t), (-t, -t), (-t, -1)]
    return [(np.array(outline, dtype=np.float64), 255)]


def _star(rng: np.random.Generator) -> list[_Part]:
    inner = rng.uniform(0.38, 0.5)
    angles = np.linspace(0.0, 2.0 * np.pi, 10, endpoint=False) - np.pi / 2
    radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    return [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), 255)]


@dataclass(frozen=True)
class _ShapeSpec:
    outline: Callable[[np.random.Generator], list[_Part]]
    min_aspect: float  # smallest stretch of one axis relative to the other; 1.0 keeps the form round


_SHAPES: dict[str, _ShapeSpec] = {
    "circle": _ShapeSpec(_circle, 1.0),
    "rectangle": _ShapeSpec(_rectangle, 0.3),
    "triangle": _ShapeSpec(_triangle, 0.6),
    "cross": _ShapeSpec(_cross, 0.6),
    "ring": _ShapeSpec(_ring, 1.0),
    "star": _ShapeSpec(_star, 0.8),
}
SUPPORTED_SHAPES: tuple[str, ...] = tuple(_SHAPES)


def _place(spec: _ShapeSpec, rng: np.random.Generator, imgsz: int, min_size_fraction: float) -> list[_Part]:
    """Stretch, rotate, scale and position a random instance of a shape, in pixel coordinates."""
    parts = spec.outline(rng)
    stretch = np.array([1.0, rng.uniform(spec.min_aspect, 1.0)])
    theta = rng.uniform(0.0, 2.0 * np.pi)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    parts = [((points * stretch) @ rotation.T, value) for points, value in parts]

    everything = np.concatenate([points for points, _ in parts])
    lo, hi = everything.min(axis=0), everything.max(axis=0)
    # Log-uniform so small objects are as common as large ones.
    min_px = max(min_size_fraction * imgsz, _MIN_SIZE_PX)
    size_px = math.exp(rng.uniform(math.log(min_px), math.log(_MAX_SIZE_FRACTION * imgsz)))
    scale = size_px / float((hi - lo).max())
    box = (hi - lo) * scale
    low = (0.5 - _MAX_OUTSIDE_FRACTION) * box
    center = rng.uniform(low, imgsz - low)
    offset = center - (lo + hi) / 2 * scale
    return [(points * scale + offset, value) for points, value in parts]


def _rasterize(parts: list[_Part], imgsz: int) -> np.ndarray:
    """Anti-aliased coverage mask, (imgsz, imgsz) uint8 with 255 = fully covered."""
    mask = np.zeros((imgsz, imgsz), dtype=np.uint8)
    for points, value in parts:
        fixed = np.round(points * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], value, lineType=cv2.LINE_AA, shift=_SHIFT)
    return mask


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, imgsz: int, clutter: bool) -> np.ndarray:
    """Textured background, with blobs and lines if ``clutter``; (imgsz, imgsz, 3) float32 BGR in [0, 255]."""
    yy, xx = np.mgrid[0:imgsz, 0:imgsz].astype(np.float32)
    theta = rng.uniform(0.0, 2.0 * np.pi)
    ramp = xx * np.cos(theta) + yy * np.sin(theta)
    ramp = (ramp - ramp.min()) / np.ptp(ramp)
    start, end = rng.uniform(0.0, 255.0, (2, 3)).astype(np.float32)
    image = start + (end - start) * ramp[..., None]

    # Smooth low-frequency colour variation.
    cells = int(rng.integers(2, 9))
    texture = rng.normal(0.0, 1.0, (cells, cells, 3)).astype(np.float32)
    image += cv2.resize(texture, (imgsz, imgsz), interpolation=cv2.INTER_CUBIC) * rng.uniform(5.0, 30.0)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if not clutter:
        return image.astype(np.float32)

    # Soft blobs: blurred ellipses, so they read as stains rather than as crisp circles.
    n_blobs = int(rng.integers(0, 5))
    if n_blobs:
        layer = image.copy()
        coverage = np.zeros((imgsz, imgsz), dtype=np.uint8)
        for _ in range(n_blobs):
            center = tuple(int(c) for c in rng.integers(0, imgsz, 2))
            axes = tuple(int(a) for a in rng.uniform(0.05, 0.2, 2) * imgsz + 1)
            angle = float(rng.uniform(0.0, 180.0))
            colour = tuple(float(c) for c in rng.uniform(0.0, 255.0, 3))
            cv2.ellipse(layer, center, axes, angle, 0.0, 360.0, colour, -1)
            cv2.ellipse(coverage, center, axes, angle, 0.0, 360.0, 255, -1)
        sigma = float(rng.uniform(0.04, 0.08) * imgsz)
        layer = cv2.GaussianBlur(layer, (0, 0), sigma).astype(np.float32)
        alpha = cv2.GaussianBlur(coverage, (0, 0), sigma).astype(np.float32)[..., None] / 255.0
        alpha *= rng.uniform(0.25, 0.6)
        image = np.clip(image * (1.0 - alpha) + layer * alpha, 0, 255).astype(np.uint8)

    # Thin, long lines: edges a detector must learn to ignore.
    for _ in range(int(rng.integers(0, 6))):
        start_pt, end_pt = rng.integers(0, imgsz, (2, 2))
        colour = tuple(float(c) for c in rng.uniform(0.0, 255.0, 3))
        cv2.line(image, tuple(int(v) for v in start_pt), tuple(int(v) for v in end_pt), colour, 1, cv2.LINE_AA)
    return image.astype(np.float32)


def _contrasting_colour(rng: np.random.Generator, underneath: np.ndarray) -> np.ndarray:
    """A random BGR colour, (3,) float32, at least _MIN_CONTRAST away from the colour `underneath`."""
    for _ in range(16):
        colour = rng.uniform(0.0, 255.0, 3)
        if np.linalg.norm(colour - underneath) >= _MIN_CONTRAST:
            return colour.astype(np.float32)
    # Rare (mid-grey surroundings): the farthest corner of the colour cube always contrasts.
    return np.where(underneath < 127.5, 255.0, 0.0).astype(np.float32)


def _draw_objects(
    canvas: np.ndarray, rng: np.random.Generator, classes: Sequence[str], n_objects: int, min_size_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw up to `n_objects` random shapes onto `canvas` and label their visible parts.

    Args:
        canvas: (H, W, 3) float32 BGR image in [0, 255] with H == W; not modified.
        rng: source of all randomness.
        classes: shape names; an object's class id is its index in this sequence.
        n_objects: objects to attempt; one is skipped when no placement keeps earlier objects visible enough.
        min_size_fraction: smallest object extent relative to the image side.

    Returns:
        The image with the objects, (H, W, 3) float32, and labels, (N, 5) float64 rows of
        ``cls, cx, cy, w, h`` normalised by the image side, in drawing order.
    """
    imgsz = canvas.shape[0]
    image = canvas.copy()
    yy, xx = np.mgrid[0:imgsz, 0:imgsz].astype(np.float32)
    class_ids: list[int] = []
    visible: list[np.ndarray] = []  # (H, W) bool: pixels each object still shows
    occupied: list[int] = []  # pixels each object covered when drawn

    for _ in range(n_objects):
        class_id = int(rng.integers(len(classes)))
        spec = _SHAPES[classes[class_id]]
        for _ in range(_PLACEMENT_TRIES):
            coverage = _rasterize(_place(spec, rng, imgsz, min_size_fraction), imgsz)
            covered = coverage >= _COVER_THRESHOLD
            n_covered = int(covered.sum())
            if n_covered >= _MIN_OBJECT_PIXELS and all(
                np.count_nonzero(mask & ~covered) >= _MIN_VISIBLE_FRACTION * area
                for mask, area in zip(visible, occupied)
            ):
                break
        else:
            continue

        alpha = coverage.astype(np.float32)[..., None] / 255.0
        underneath = (image * alpha).sum(axis=(0, 1)) / alpha.sum()
        colour = _contrasting_colour(rng, underneath)
        # A gentle linear shading across the object, so fills are not perfectly flat.
        ys, xs = np.nonzero(covered)
        theta = rng.uniform(0.0, 2.0 * np.pi)
        span = max(np.ptp(xs), np.ptp(ys), 1)
        ramp = ((xx - xs.mean()) * np.cos(theta) + (yy - ys.mean()) * np.sin(theta)) / span
        fill = colour + (rng.uniform(-30.0, 30.0) * ramp)[..., None]
        image = image * (1.0 - alpha) + fill * alpha

        visible = [mask & ~covered for mask in visible]
        visible.append(covered)
        occupied.append(n_covered)
        class_ids.append(class_id)

    labels = np.zeros((len(class_ids), 5), dtype=np.float64)
    for row, (class_id, mask) in enumerate(zip(class_ids, visible)):
        ys, xs = np.nonzero(mask)
        # Pixel i spans [i, i + 1), hence the +1 on the far edges.
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        labels[row] = (class_id, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
    labels[:, 1:] /= imgsz
    return image, labels


def _render_sample(
    rng: np.random.Generator, imgsz: int, classes: Sequence[str], difficulty: Difficulty
) -> tuple[np.ndarray, np.ndarray]:
    """One image, (imgsz, imgsz, 3) uint8 BGR, and its labels, (N, 5) float64 (see _draw_objects)."""
    canvas = _background(rng, imgsz, difficulty.clutter)
    n_objects = int(rng.integers(1, difficulty.max_objects + 1))
    image, labels = _draw_objects(canvas, rng, classes, n_objects, difficulty.min_size_fraction)
    # Sensor-like noise and occasional softness over everything, objects included.
    noise = rng.uniform(difficulty.max_noise / 4, difficulty.max_noise)
    image += rng.normal(0.0, noise, image.shape).astype(np.float32)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.3, 0.8)))
    return np.clip(np.round(image), 0, 255).astype(np.uint8), labels


def _format_labels(labels: np.ndarray) -> str:
    return "".join(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in labels)


# ---------------------------------------------------------------------------------------------------------------------
# Writing the dataset
# ---------------------------------------------------------------------------------------------------------------------


def _validated_params(
    n_train: int, n_val: int, imgsz: int, seed: int, classes: Sequence[str], difficulty: str | Difficulty
) -> dict[str, Any]:
    """The generation parameters as a JSON-compatible dict; raises ValueError on bad input."""
    # operator.index rejects floats such as 2.5 (TypeError) instead of silently truncating them.
    n_train, n_val, imgsz, seed = (operator.index(v) for v in (n_train, n_val, imgsz, seed))
    if n_train < 1:
        raise ValueError(f"n_train must be at least 1, got {n_train}")
    if n_val < 1:
        raise ValueError(f"n_val must be at least 1, got {n_val}")
    if imgsz < 64 or imgsz % 32:
        raise ValueError(f"imgsz must be a multiple of 32 and at least 64, got {imgsz}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of shape names, not the single string {classes!r}")
    names = list(classes)
    if not names:
        raise ValueError("classes must name at least one shape")
    unknown = [name for name in names if name not in _SHAPES]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; supported shapes are {list(SUPPORTED_SHAPES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"classes must not repeat a shape, got {names}")
    if isinstance(difficulty, str):
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {list(DIFFICULTIES)}")
        difficulty = DIFFICULTIES[difficulty]
    if not (0 < difficulty.min_size_fraction <= _MAX_SIZE_FRACTION and difficulty.max_objects >= 1
            and difficulty.max_noise >= 0):
        raise ValueError(f"difficulty out of range: {difficulty}")
    return {
        "generator_version": GENERATOR_VERSION,
        "n_train": n_train,
        "n_val": n_val,
        "imgsz": imgsz,
        "seed": seed,
        "classes": names,
        "difficulty": asdict(difficulty),  # by value: a name and the same settings give the same dataset
    }


def _write_data_yaml(directory: Path, root: Path, classes: Sequence[str]) -> None:
    content = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(classes))}
    with open(directory / "data.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(content, f, sort_keys=False)


def _repoint_if_moved(root: Path, classes: Sequence[str]) -> None:
    """Rewrite data.yaml when a finished dataset was moved or copied, as its `path` is absolute."""
    yaml_file = root / "data.yaml"
    with open(yaml_file, encoding="utf-8") as f:
        if yaml.safe_load(f).get("path") == str(root):
            return
    scratch = Path(tempfile.mkdtemp(prefix=".data-yaml-", dir=root))
    try:
        _write_data_yaml(scratch, root, classes)
        os.replace(scratch / "data.yaml", yaml_file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_contents(directory: Path, root: Path, params: dict[str, Any], progress: bool) -> None:
    """Render every split into `directory`, which will later be renamed to `root`."""
    counts = {"train": params["n_train"], "val": params["n_val"]}
    with tqdm(total=sum(counts.values()), desc=f"Generating {root.name}", disable=not progress) as bar:
        for split_index, split in enumerate(_SPLITS):
            image_dir = directory / "images" / split
            label_dir = directory / "labels" / split
            image_dir.mkdir(parents=True)
            label_dir.mkdir(parents=True)
            for index in range(counts[split]):
                rng = np.random.default_rng([params["seed"], split_index, index])
                image, labels = _render_sample(rng, params["imgsz"], params["classes"], Difficulty(**params["difficulty"]))
                image_file = image_dir / f"{index:06d}.jpg"
                if not cv2.imwrite(str(image_file), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
                    raise OSError(f"could not write {image_file}")
                with open(label_dir / f"{index:06d}.txt", "w", encoding="utf-8", newline="\n") as f:
                    f.write(_format_labels(labels))
                bar.update()
    _write_data_yaml(directory, root, params["classes"])


def generate_dataset(
    root: str | Path,
    n_train: int = 400,
    n_val: int = 100,
    imgsz: int = 128,
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_CLASSES,
    difficulty: str | Difficulty = "easy",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate the synthetic shapes dataset at `root`, or reuse it if it is already there.

    Args:
        root: dataset directory to create. Its parent is created if needed.
        n_train: number of training images, >= 1.
        n_val: number of validation images, >= 1.
        imgsz: image side in pixels (images are square), a multiple of 32 and >= 64.
        seed: non-negative seed; the same parameters and seed give identical files.
        classes: shape names, see SUPPORTED_SHAPES; class id ``i`` is ``classes[i]``.
        difficulty: a name of :data:`DIFFICULTIES` (``"easy"`` or ``"hard"``) or a :class:`Difficulty`.
        overwrite: replace `root` (deleting its contents) if it holds anything other than a
            finished dataset with exactly these parameters.
        progress: show a tqdm progress bar on stderr.

    Returns:
        Absolute path of ``<root>/data.yaml``, loadable by ultralytics.

    Raises:
        ValueError: if a parameter is out of range.
        FileExistsError: if `root` is non-empty but not this dataset and `overwrite` is False.
    """
    params = _validated_params(n_train, n_val, imgsz, seed, classes, difficulty)
    root = Path(root).expanduser().resolve()
    if holds(root, _MARKER, params):
        _repoint_if_moved(root, params["classes"])
        return root / "data.yaml"
    occupied = root.exists() and (not root.is_dir() or any(root.iterdir()))
    if occupied and not overwrite:
        raise FileExistsError(
            f"{root} already exists and is not a finished synthetic dataset with these parameters; "
            "refusing to touch it. Choose another directory or pass overwrite=True to replace it."
        )

    write_directory(root, lambda staging: _write_contents(staging, root, params, progress), _MARKER, params)
    return root / "data.yaml"


def default_dataset(cache_dir: str | Path | None = None) -> Path:
    """The bundled default dataset (400 train / 100 val images, 128 px, easy, circle / cross / star), generated on first use.

    Args:
        cache_dir: cache root; defaults to ``$SPIKEYOLO_CACHE_DIR`` or else ``~/.cache/spikeyolo``.
            The dataset lives in ``<cache_dir>/datasets/synthetic-shapes-v<version>-<params hash>``.

    Returns:
        Absolute path of the dataset's data.yaml. Later calls return it without regenerating.
    """
    base = Path(cache_dir or os.environ.get("SPIKEYOLO_CACHE_DIR") or Path.home() / ".cache" / "spikeyolo")
    params = _validated_params(**_DEFAULT_SETTINGS)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    root = base.expanduser() / "datasets" / f"synthetic-shapes-v{GENERATOR_VERSION}-{digest}"
    return generate_dataset(root, **_DEFAULT_SETTINGS)
