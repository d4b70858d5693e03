"""Tests for the synthetic shapes dataset generator."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from spikeyolo.data import synthetic
from spikeyolo.commands.cli import main
from spikeyolo.data.synthetic import DEFAULT_CLASSES, DIFFICULTIES, SUPPORTED_SHAPES, Difficulty, default_dataset, generate_dataset

SMALL = {"n_train": 12, "n_val": 4, "imgsz": 64, "progress": False}
LABEL_LINE = re.compile(r"^\d+( (0|1)\.\d{6}){4}$")


def _files(root: Path) -> dict[str, bytes]:
    """Images and labels of a dataset, keyed by path relative to `root`."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for sub in ("images", "labels")
        for path in sorted((root / sub).rglob("*"))
        if path.is_file()
    }


def _labels(root: Path, split: str) -> list[np.ndarray]:
    return [
        np.loadtxt(path, ndmin=2).reshape(-1, 5) for path in sorted((root / "labels" / split).glob("*.txt"))
    ]


def test_layout_and_data_yaml(tmp_path: Path) -> None:
    data_yaml = generate_dataset(tmp_path / "ds", **SMALL)
    root = (tmp_path / "ds").resolve()
    assert data_yaml == root / "data.yaml"

    for split, n in (("train", 12), ("val", 4)):
        images = sorted(p.stem for p in (root / "images" / split).glob("*.jpg"))
        labels = sorted(p.stem for p in (root / "labels" / split).glob("*.txt"))
        assert len(images) == n
        assert images == labels
        image = cv2.imread(str(root / "images" / split / f"{images[0]}.jpg"))
        assert image.shape == (64, 64, 3)

    content = yaml.safe_load(data_yaml.read_text())
    assert content == {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "circle", 1: "rectangle", 2: "triangle", 3: "cross"},
    }
    assert Path(content["path"]).is_absolute()
    # Nothing but the dataset itself is left behind next to it.
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_label_format_and_ranges(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "ds", **SMALL)
    for path in sorted((tmp_path / "ds" / "labels").rglob("*.txt")):
        lines = path.read_text().splitlines()
        assert 1 <= len(lines) <= 6, path
        for line in lines:
            assert LABEL_LINE.match(line), f"{path}: {line!r}"
        labels = np.array([line.split() for line in lines], dtype=np.float64)
        assert (labels[:, 0] < len(DEFAULT_CLASSES)).all()
        cx, cy, w, h = labels[:, 1:].T
        assert (labels[:, 1:] >= 0).all() and (labels[:, 1:] <= 1).all()
        # At least two pixels wide and high, and entirely inside the image.
        assert (w >= 2 / 64).all() and (h >= 2 / 64).all()
        assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
        assert (cy - h / 2 >= -1e-6).all() and (cy + h / 2 <= 1 + 1e-6).all()


@pytest.mark.parametrize("shape", SUPPORTED_SHAPES)
def test_box_is_tight_around_the_drawn_shape(shape: str) -> None:
    imgsz, grey = 64, 128.0
    for seed in range(10):
        canvas = np.full((imgsz, imgsz, 3), grey, dtype=np.float32)
        image, labels = synthetic._draw_objects(canvas, np.random.default_rng(seed), [shape], n_objects=1,
                                                min_size_fraction=0.08)
        assert labels.shape == (1, 5)
        _, cx, cy, w, h = labels[0] * [1, imgsz, imgsz, imgsz, imgsz]
        label_box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

        # Every pixel the shape touched, even faint anti-aliased edges.
        ys, xs = np.nonzero(np.abs(image - grey).max(axis=2) > 1.0)
        drawn_box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
        # Labels count pixels the shape covers at least half, so they may sit one pixel inside the
        # faint edge pixels, never outside them.
        inset = (label_box - drawn_box) * [1, 1, -1, -1]
        assert (inset >= -1e-6).all() and (inset <= 1 + 1e-6).all(), (seed, label_box, drawn_box)


def test_occluded_objects_stay_mostly_visible() -> None:
    imgsz = 64
    for seed in range(10):
        canvas = np.full((imgsz, imgsz, 3), 128.0, dtype=np.float32)
        _, labels = synthetic._draw_objects(canvas, np.random.default_rng(seed), DEFAULT_CLASSES, n_objects=6,
                                            min_size_fraction=0.08)
        assert 1 <= len(labels) <= 6
        assert (labels[:, 3:] > 0).all()


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = _files(generate_dataset(tmp_path / "a", seed=3, **SMALL).parent)
    second = _files(generate_dataset(tmp_path / "b", seed=3, **SMALL).parent)
    other = _files(generate_dataset(tmp_path / "c", seed=4, **SMALL).parent)
    assert first == second
    assert first.keys() == other.keys()
    assert first != other
    labels = [name for name in first if name.endswith(".txt")]
    assert any(first[name] != other[name] for name in labels)


def test_every_class_appears(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "ds", n_train=40, n_val=4, imgsz=64, progress=False).parent
    for split in ("train", "val"):
        assert _labels(root, split)
    classes = np.concatenate([lb[:, 0] for lb in _labels(root, "train")]).astype(int)
    assert set(classes) == set(range(len(DEFAULT_CLASSES)))


def test_difficulty_sets_object_count_and_size(tmp_path: Path) -> None:
    """The last object drawn is never occluded: its box spans its size, less what may stick out of the frame."""
    smallest = {}
    for name, difficulty in DIFFICULTIES.items():
        root = generate_dataset(tmp_path / name, n_train=30, n_val=1, imgsz=64, difficulty=name, progress=False).parent
        labels = _labels(root, "train")
        assert max(len(lb) for lb in labels) == difficulty.max_objects
        smallest[name] = min(lb[-1, 3:].max() for lb in labels)
    easy = DIFFICULTIES["easy"].min_size_fraction
    assert smallest["easy"] >= (1 - 2 * synthetic._MAX_OUTSIDE_FRACTION) * easy - 1 / 64
    assert smallest["hard"] < easy


def test_only_hard_backgrounds_are_cluttered() -> None:
    """Blobs and thin lines make steps between neighbouring pixels; the smooth background has none."""

    def steepest(clutter: bool, seed: int) -> float:
        image = synthetic._background(np.random.default_rng(seed), 64, clutter)
        return max(np.abs(np.diff(image, axis=0)).max(), np.abs(np.diff(image, axis=1)).max())

    assert max(steepest(False, seed) for seed in range(20)) < 20
    assert max(steepest(True, seed) for seed in range(20)) > 60


def test_a_difficulty_by_name_or_by_value_is_the_same_dataset(tmp_path: Path) -> None:
    data_yaml = generate_dataset(tmp_path / "ds", difficulty="hard", **SMALL)
    same = Difficulty(**vars(DIFFICULTIES["hard"]))
    assert generate_dataset(tmp_path / "ds", difficulty=same, **SMALL) == data_yaml  # reused, not refused
    with pytest.raises(FileExistsError):
        generate_dataset(tmp_path / "ds", difficulty="easy", **SMALL)


def test_custom_classes(tmp_path: Path) -> None:
    data_yaml = generate_dataset(tmp_path / "ds", classes=["star", "ring"], **SMALL)
    assert yaml.safe_load(data_yaml.read_text())["names"] == {0: "star", 1: "ring"}
    classes = np.concatenate([lb[:, 0] for lb in _labels(data_yaml.parent, "train")])
    assert set(classes.astype(int)) <= {0, 1}


def test_second_call_touches_nothing(tmp_path: Path) -> None:
    data_yaml = generate_dataset(tmp_path / "ds", **SMALL)
    root = data_yaml.parent
    before = {p: p.stat().st_mtime_ns for p in [root, *root.rglob("*")]}
    assert json.loads((root / ".complete").read_text())["n_train"] == 12

    assert generate_dataset(tmp_path / "ds", **SMALL) == data_yaml
    assert {p: p.stat().st_mtime_ns for p in [root, *root.rglob("*")]} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_different_parameters_need_overwrite(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "ds", **SMALL)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_dataset(tmp_path / "ds", seed=1, **SMALL)

    data_yaml = generate_dataset(tmp_path / "ds", seed=1, overwrite=True, **SMALL)
    assert json.loads((data_yaml.parent / ".complete").read_text())["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_foreign_directory_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    notes = root / "notes.txt"
    notes.write_text("precious")
    with pytest.raises(FileExistsError) as error:
        generate_dataset(root, **SMALL)
    assert str(root.resolve()) in str(error.value)
    assert "overwrite=True" in str(error.value)
    assert notes.read_text() == "precious"
    assert [p.name for p in root.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_empty_directory_is_filled(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    assert generate_dataset(tmp_path / "ds", **SMALL).is_file()


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render = synthetic._render_sample
    calls = iter(range(100))

    def failing_render(*args, **kwargs):
        if next(calls) == 5:
            raise KeyboardInterrupt
        return render(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_render_sample", failing_render)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "ds", **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"imgsz": 48}, "imgsz"),
        ({"imgsz": 100}, "imgsz"),
        ({"imgsz": 32}, "imgsz"),
        ({"n_train": 0}, "n_train"),
        ({"n_val": 0}, "n_val"),
        ({"seed": -1}, "seed"),
        ({"classes": []}, "at least one"),
        ({"classes": ["circle", "hexagon"]}, "hexagon"),
        ({"classes": "circle"}, "sequence"),
        ({"classes": ["circle", "circle"]}, "repeat"),
        ({"difficulty": "medium"}, "medium"),
        ({"difficulty": Difficulty(clutter=False, min_size_fraction=0.0, max_objects=2, max_noise=1.0)}, "range"),
    ],
)
def test_invalid_parameters(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "ds", **{**SMALL, **kwargs})
    assert not (tmp_path / "ds").exists()


def test_default_dataset_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real default (500 images at 128 px) is too slow for a unit test; the caching logic is the same.
    monkeypatch.setattr(synthetic, "_DEFAULT_SETTINGS", {**synthetic._DEFAULT_SETTINGS, "n_train": 3, "n_val": 2})
    monkeypatch.setenv("SPIKEYOLO_CACHE_DIR", str(tmp_path / "env-cache"))

    data_yaml = default_dataset()
    assert data_yaml.parent.parent == (tmp_path / "env-cache" / "datasets").resolve()
    assert re.fullmatch(r"synthetic-shapes-v\d+-[0-9a-f]{12}", data_yaml.parent.name)
    mtime = data_yaml.stat().st_mtime_ns
    assert default_dataset() == data_yaml
    assert data_yaml.stat().st_mtime_ns == mtime

    explicit = default_dataset(tmp_path / "explicit")
    assert explicit.parent.name == data_yaml.parent.name
    assert explicit.parent.parent == (tmp_path / "explicit" / "datasets").resolve()


def test_moved_dataset_is_repointed(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "old", **SMALL)
    (tmp_path / "old").rename(tmp_path / "new")
    data_yaml = generate_dataset(tmp_path / "new", **SMALL)
    assert yaml.safe_load(data_yaml.read_text())["path"] == str((tmp_path / "new").resolve())


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", f"out={tmp_path / 'ds'}", "n_train=2", "n_val=1", "imgsz=64", "classes=circle,star"]) == 0
    data_yaml = (tmp_path / "ds" / "data.yaml").resolve()
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(data_yaml)
    assert yaml.safe_load(data_yaml.read_text())["names"] == {0: "circle", 1: "star"}
    assert main(["synth", f"out={tmp_path / 'hard'}", "n_train=2", "n_val=1", "imgsz=64", "difficulty=hard"]) == 0
    marker = json.loads((tmp_path / "hard" / ".complete").read_text())
    assert marker["difficulty"] == vars(DIFFICULTIES["hard"])
    assert main(["synth", f"out={tmp_path / 'bad'}", "imgsz=50"]) == 2
    assert "spikeyolo synth: error: " in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["synth", f"out={tmp_path / 'ds'}", "n_train=3"]) == 2  # another dataset there: refused, kept
    assert "already exists" in capsys.readouterr().err and data_yaml.is_file()


def test_loads_through_ultralytics(tmp_path: Path) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.data.utils import check_det_dataset, img2label_paths, verify_image_label

    data_yaml = generate_dataset(tmp_path / "ds", **SMALL)
    data = check_det_dataset(str(data_yaml))
    assert data["nc"] == len(DEFAULT_CLASSES)
    assert data["names"] == dict(enumerate(DEFAULT_CLASSES))

    for split in ("train", "val"):
        images = sorted(str(p) for p in Path(data[split]).glob("*.jpg"))
        assert images
        for image, label in zip(images, img2label_paths(images)):
            *_, missing, found, empty, corrupt, message = verify_image_label(
                (image, label, "", False, data["nc"], 0, 0, False)
            )
            assert (missing, found, empty, corrupt, message) == (0, 1, 0, 0, ""), message
