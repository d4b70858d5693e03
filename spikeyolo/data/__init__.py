"""Datasets bundled with spikeyolo.

`generate_dataset` writes the synthetic shapes detection dataset in ultralytics/YOLO layout;
`default_dataset` returns the cached default copy of it, generating it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spikeyolo.data.synthetic import default_dataset, generate_dataset

__all__ = ["default_dataset", "generate_dataset"]


def __getattr__(name: str) -> Any:
    # Resolved lazily: importing the submodule here would make `python -m spikeyolo.data.synthetic`
    # find it already in sys.modules and warn that it is executed twice.
    if name in __all__:
        from spikeyolo.data import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
