"""Make ultralytics work with no network: set its environment before it is imported.

ultralytics probes the network at import, downloads fonts when plotting, installs missing
packages with pip and reports events unless told otherwise. This module must not import
ultralytics.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def default_config_dir() -> Path:
    """Where spikeyolo keeps ultralytics' settings and fonts unless ``YOLO_CONFIG_DIR`` is set."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "spikeyolo"


def _bundled_font() -> Path | None:
    """DejaVuSans from matplotlib (an ultralytics dependency), found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    font = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.is_file() else None


def configure_offline() -> Path:
    """Set ultralytics' environment for offline use and provision its config directory.

    Existing environment values win: ``YOLO_OFFLINE`` (default ``1``), ``YOLO_AUTOINSTALL``
    (default ``False``) and ``YOLO_CONFIG_DIR`` (default ``~/.config/spikeyolo``). The
    directory receives the fonts ultralytics would otherwise download (matplotlib's DejaVuSans
    under the names it asks for) and a ``settings.json`` with ``sync`` off and a relative
    ``runs_dir`` (ultralytics would otherwise freeze the first working directory into it), both
    only if missing.

    Returns:
        The ultralytics user config directory (``$YOLO_CONFIG_DIR/Ultralytics``).
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(default_config_dir()))).expanduser() / "Ultralytics"
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        font = _bundled_font()
        for name in FONT_NAMES:
            if font is not None and not (config_dir / name).exists():
                shutil.copyfile(font, config_dir / name)
        settings = config_dir / "settings.json"
        if not settings.exists():  # a relative runs_dir keeps runs next to where a command is run
            settings.write_text(json.dumps({"sync": False, "runs_dir": "runs"}))
    except OSError:
        pass  # read-only home: ultralytics falls back to a temporary dir and works without fonts
    return config_dir
