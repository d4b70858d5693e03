"""Packaged configurations: model YAMLs (``cfg/models``), dataset YAMLs (``cfg/datasets``), the published
energy spreadsheet (``cfg/energy``), recipes.

Model names resolve from the package, so ``"snn_yolov8s.yaml"`` works from any directory and in
a fresh DDP worker; the scale letter after the version number selects the scale.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

CFG_DIR = Path(__file__).resolve().parent
MODELS_DIR = CFG_DIR / "models"
DATASETS_DIR = CFG_DIR / "datasets"
ENERGY_DIR = CFG_DIR / "energy"

_SCALED_NAME = re.compile(r"^(?P<base>.*?\d+)(?P<scale>[nslmx])(?P<rest>(-.+)?)$")


class ModelConfigError(ValueError):
    """A model YAML that cannot be built; the message names the file or layer."""


def resolve_model_cfg(cfg: str | Path) -> Path:
    """Absolute path naming a model config: an existing file as given, else a packaged model.

    The returned name keeps the scale letter (``.../models/snn_yolov8n.yaml``) even though the
    packaged file is the unscaled ``snn_yolov8.yaml``; :func:`model_yaml_file` finds the file.

    Raises:
        FileNotFoundError: neither a file nor a packaged model.
    """
    path = Path(cfg).expanduser()
    if path.is_file():
        return path.resolve()
    packaged = MODELS_DIR / path.name
    if packaged.is_file() or (MODELS_DIR / _unscaled_name(path)).is_file():
        return packaged
    available = sorted(p.name for p in MODELS_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"model config '{cfg}' not found (not a file, not a packaged model; packaged: {available})")


def model_yaml_file(cfg: str | Path) -> Path:
    """The file to read for a model config name (the unscaled packaged file for a scaled name)."""
    path = resolve_model_cfg(cfg)
    return path if path.is_file() else MODELS_DIR / _unscaled_name(path)


def _unscaled_name(path: Path) -> str:
    m = _SCALED_NAME.match(path.stem)
    return f"{m['base']}{m['rest']}{path.suffix}" if m else path.name


def guess_scale(cfg: str | Path) -> str | None:
    """The scale letter in a model name (``snn_yolov8s.yaml`` → ``s``), or ``None``."""
    m = _SCALED_NAME.match(Path(cfg).stem)
    return m["scale"] if m else None


def load_model_yaml(cfg: str | Path | dict) -> dict:
    """Read a model YAML into a dict with ``scale`` and ``yaml_file`` set.

    Raises:
        FileNotFoundError: no such file or packaged model.
        ModelConfigError: the file is not valid YAML or lacks ``nc``/``backbone``/``head``.
    """
    if isinstance(cfg, dict):
        return dict(cfg)
    path = model_yaml_file(cfg)
    try:
        d = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ModelConfigError(f"model config '{path}' is not valid YAML: {e}") from e
    if not isinstance(d, dict):
        raise ModelConfigError(f"model config '{path}' must be a mapping with 'nc', 'backbone' and 'head'")
    missing = [k for k in ("nc", "backbone", "head") if k not in d]
    if missing:
        raise ModelConfigError(f"model config '{path}' lacks {missing}")
    requested = guess_scale(cfg)
    if requested and "scales" in d and requested not in d["scales"]:
        raise ModelConfigError(f"model config '{cfg}': scale '{requested}' not in {list(d['scales'])}")
    d["scale"] = requested or d.get("scale")
    d["yaml_file"] = str(resolve_model_cfg(cfg))
    return d
