"""The reference energy spreadsheet (``power_cal.xlsx``) as data: its rows, and a comparison with a model.

The reference authors filled one row per neuron-fed convolution of the s model at 640×640 by
hand (firing rate, C_in, C_out, k, stride, sizes, groups) and summed MACs × energy. Its rows,
exported to JSON (keys ``constants_pj``, ``totals`` and ``rows`` with ``neuron``, ``fr``,
``c_in``, ``c_out``, ``k``, ``stride``, ``h_in``, ``w_in``, ``h_out``, ``w_out``, ``groups``,
``macs``), can be recomputed exactly (``template`` mode) or, keeping only its firing rates,
re-charged with the geometry measured on our model (``corrected`` mode).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..cfg import ENERGY_DIR
from .synops import SynapseGeometry

FIRST_ROW = "first_layer"


def _reference_name(neuron: str) -> str:
    """``model.model.2.Conv.lif1`` (ultralytics ``YOLO`` wrapper path) → ``model.2.Conv.lif1``."""
    return neuron.removeprefix("model.") if neuron.startswith("model.model.") else neuron


def packaged_templates() -> list[str]:
    """Names of the spreadsheets shipped with the package (``snn_yolov8s``: the published one)."""
    return sorted(p.stem for p in ENERGY_DIR.glob("*.json"))


def load_template(path: str | Path) -> dict:
    """Read and check a spreadsheet JSON: a file, or a packaged name such as ``"snn_yolov8s"``.

    Raises:
        FileNotFoundError: neither a file nor a packaged template.
        ValueError: not JSON, or rows missing a required field.
    """
    path = Path(path)
    if not path.is_file() and (ENERGY_DIR / f"{path.name.removesuffix('.json')}.json").is_file():
        path = ENERGY_DIR / f"{path.name.removesuffix('.json')}.json"
    if not path.is_file():
        raise FileNotFoundError(f"energy template '{path}' not found (not a file, not a packaged template; "
                                f"packaged: {packaged_templates()})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"energy template '{path}' is not JSON: {e}") from None
    fields = ("neuron", "fr", "c_in", "c_out", "k", "stride", "h_in", "w_in", "h_out", "w_out", "groups")
    rows = data.get("rows") if isinstance(data, dict) else None
    if not rows or not all(isinstance(r, dict) and all(f in r for f in fields) for r in rows):
        raise ValueError(f"energy template '{path}' needs 'rows' with the fields {fields}")
    return data


def template_geometry(template: dict) -> list[SynapseGeometry]:
    """The spreadsheet's own rows as geometry, MACs by its formula ``c_in·c_out·k²·(h_in/S)·(w_in/S)/groups``."""
    rows = []
    for r in template["rows"]:
        name = _reference_name(r["neuron"])
        macs = r["c_in"] * r["c_out"] * r["k"] ** 2 * (r["h_in"] // r["stride"]) * (r["w_in"] // r["stride"]) // r["groups"]
        layer = int(name.split(".")[1]) if name != FIRST_ROW else 1
        rows.append(SynapseGeometry(
            name=name, layer=layer, conv=name, c_in=r["c_in"], c_out=r["c_out"], k=r["k"], stride=r["stride"],
            groups=r["groups"], h_in=r["h_in"], w_in=r["w_in"], h_out=r["h_out"], w_out=r["w_out"], T=1,
            macs=macs, executed_macs=macs, spiking=name != FIRST_ROW,
        ))
    return rows


def template_rates(template: dict) -> dict[str, float]:
    """Neuron path → the spreadsheet's firing rate (the first row's 4.6 is a cost, not a rate, and is left out)."""
    return {_reference_name(r["neuron"]): float(r["fr"]) for r in template["rows"] if r["neuron"] != FIRST_ROW}


def compare_geometry(template: list[SynapseGeometry], model: list[SynapseGeometry]) -> list[dict]:
    """Rows whose MACs differ between the spreadsheet and the model, or that only one of them has."""
    ours = {g.name: g for g in model}
    theirs = {g.name: g for g in template}
    differences = []
    for name in list(theirs) + [n for n in ours if n not in theirs]:
        a, b = theirs.get(name), ours.get(name)
        if a is None or b is None or a.macs != b.macs:
            differences.append({
                "name": name,
                "template": None if a is None else {"c_in": a.c_in, "c_out": a.c_out, "k": a.k, "h_in": a.h_in, "macs": a.macs},
                "model": None if b is None else {"c_in": b.c_in, "c_out": b.c_out, "k": b.k, "h_in": b.h_in, "macs": b.macs},
            })
    return differences
