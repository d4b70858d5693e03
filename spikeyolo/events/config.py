"""Event datasets are ordinary ultralytics dataset YAMLs with an ``events`` block (and optionally ``hyp``).

``events`` selects the frame representation (see :class:`EventRepresentation`), the label rule and
the sensor size; ``hyp`` holds training defaults that ``SpikeYOLO.train`` applies under the user's
own arguments. The packaged ``cfg/datasets/gen1.yaml`` is the template for Prophesee Gen1.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..cfg import DATASETS_DIR
from .labels import LABEL_RULES
from .representation import EventRepresentation

__all__ = ["GEN1_YAML", "read_data_yaml", "is_event_data", "representation_of", "training_defaults"]

GEN1_YAML = DATASETS_DIR / "gen1.yaml"


def _resolve(data: str | Path) -> Path:
    path = Path(data).expanduser()
    return path if path.is_file() or path.is_absolute() else DATASETS_DIR / path.name


def read_data_yaml(data: str | Path | dict) -> dict:
    """The dataset YAML as a dict (a path, a packaged name such as ``"gen1.yaml"``, or a dict)."""
    if isinstance(data, dict):
        return data
    path = _resolve(data)
    if not path.is_file():
        raise FileNotFoundError(f"dataset YAML '{data}' not found")
    content = yaml.safe_load(path.read_text())
    if not isinstance(content, dict):
        raise ValueError(f"dataset YAML '{path}' is not a mapping")
    return content


def is_event_data(data: str | Path | dict | None) -> bool:
    """True for a dataset YAML with an ``events`` block; False for anything else, unreadable files included."""
    if not data:
        return False
    try:
        return isinstance(read_data_yaml(data).get("events"), dict)
    except (OSError, ValueError, yaml.YAMLError):
        return False  # not ours to report: ultralytics' dataset check names the problem


def representation_of(data: str | Path | dict) -> EventRepresentation:
    """The :class:`EventRepresentation` of an event dataset YAML.

    Raises:
        ValueError: no ``events`` block, unknown keys or values.
    """
    events = read_data_yaml(data).get("events")
    if not isinstance(events, dict):
        raise ValueError(f"dataset '{data}' has no 'events' block: not an event-camera dataset")
    known = set(EventRepresentation.__dataclass_fields__)
    extra = set(events) - known - {"labels", "sensor"}
    if extra:
        raise ValueError(f"dataset '{data}': unknown 'events' keys {sorted(extra)}; known: {sorted(known | {'labels', 'sensor'})}")
    if events.get("labels", "reference") not in LABEL_RULES:
        raise ValueError(f"dataset '{data}': events.labels must be one of {LABEL_RULES}")
    return EventRepresentation(**{k: v for k, v in events.items() if k in known})


def training_defaults(data: str | Path | dict) -> dict:
    """The dataset's ``hyp`` block (training defaults), ``{}`` if none."""
    hyp = read_data_yaml(data).get("hyp") or {}
    if not isinstance(hyp, dict):
        raise ValueError(f"dataset '{data}': 'hyp' must be a mapping of training arguments")
    return dict(hyp)
