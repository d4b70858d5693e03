"""``spikeyolo energy``: firing rates, synaptic operations and energy per layer, with plots.

    spikeyolo energy model=best.pt source=images/ imgsz=640      # any images, no labels, no mAP
    spikeyolo energy model=best.pt data=data.yaml imgsz=640      # mAP too (= test.py energy=True)
    spikeyolo energy template=power_cal.json [model=snn_yolov8s.yaml]   # the reference spreadsheet

Options: ``energy_preset=fp32|fp16|int8`` (45 nm energy per operation), ``first_layer=mac|template``
(how the pixel-fed convolution is charged), ``batch``, ``project``, ``name``, ``exist_ok``.
Writes ``energy.json``, ``energy.csv``, ``firing_rates.png`` and ``energy.png`` into the run directory.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from ultralytics.utils import SETTINGS
from ultralytics.utils.checks import check_imgsz
from ultralytics.utils.files import increment_path

from ..analysis import EnergyReport, energy_costs, energy_report, energy_rows, measure_rates_on_images
from ..analysis.energy import FIRST_LAYER_CONVENTIONS
from ..analysis.synops import synapse_geometry
from ..analysis.template import compare_geometry, load_template, template_geometry, template_rates
from .arguments import UsageError, parse_arguments

ENERGY_KEYS = ("energy_preset", "first_layer")


def pop_energy_options(args: dict) -> dict:
    """Remove and check ``energy_preset`` and ``first_layer`` from ``args``; unknown values fail before any work."""
    options = {"preset": str(args.pop("energy_preset", "fp32")), "first_layer": str(args.pop("first_layer", "mac"))}
    energy_costs(options["preset"])
    if options["first_layer"] not in FIRST_LAYER_CONVENTIONS:
        raise UsageError(f"first_layer must be one of {FIRST_LAYER_CONVENTIONS}, got '{options['first_layer']}'")
    return options


def nominal_imgsz(model, imgsz: int | None) -> int:
    """The square size MACs are counted at: ``imgsz`` (or the checkpoint's), rounded up to the stride like ultralytics."""
    return check_imgsz(int(imgsz or model.overrides.get("imgsz", 640)), stride=int(model.model.stride.max()))


def _run_dir(args: dict) -> Path:
    project = Path(args.pop("project", None) or Path(SETTINGS["runs_dir"]) / "detect")
    return increment_path(project / str(args.pop("name", None) or "energy"), exist_ok=bool(args.pop("exist_ok", False)))


def _template(args: dict) -> int:
    """Recompute the spreadsheet, then (with ``model=``) re-charge its rates with the model's geometry."""
    template = load_template(args.pop("template"))
    args.setdefault("first_layer", "template")
    options = pop_energy_options(args)
    costs = energy_costs(options["preset"])
    run_dir = _run_dir(args)
    geometry = template_geometry(template)
    imgsz = geometry[0].h_in
    rows = energy_rows(geometry, template_rates(template), costs, first_layer="template")
    reports = {"template": EnergyReport.from_rows(rows, costs, imgsz, "template")}
    if "model" in args:
        from ..engine.model import SpikeYOLO

        measured = synapse_geometry(SpikeYOLO(args["model"]).model, imgsz)
        rows = energy_rows(measured, template_rates(template), costs, options["first_layer"])
        reports["corrected"] = EnergyReport.from_rows(rows, costs, imgsz, options["first_layer"])
        differences = compare_geometry(geometry, measured)
        (run_dir / "corrected").mkdir(parents=True, exist_ok=True)
        (run_dir / "corrected" / "template_differences.json").write_text(json.dumps(differences, indent=1))
        print(f"rows of the template that differ from {args['model']}:")
        for d in differences:
            print(f"  {d['name']}: template {d['template']} model {d['model']}")
    for mode, report in reports.items():
        print(f"\n{mode}:\n{report.format_table()}")
        report.save(run_dir / mode)
    print(f"\nresults: {run_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns an exit code."""
    from ..engine.model import SpikeYOLO

    try:
        args = parse_arguments(sys.argv[1:] if argv is None else argv, extra_keys=(*ENERGY_KEYS, "template"))
        if "template" in args:
            return _template(args)
        if "data" in args:
            from .test import main as test

            return test([f"{k}={v}" for k, v in args.items()] + ["energy=True"])
        options = pop_energy_options(args)
        if "model" not in args or "source" not in args:
            raise UsageError("give model= and source= (images) or data= (dataset YAML), or template=")
        model = SpikeYOLO(args.pop("model"))
        imgsz = nominal_imgsz(model, args.pop("imgsz", None))
        monitor = measure_rates_on_images(model.model, args.pop("source"), imgsz, int(args.pop("batch", 8)))
        report = energy_report(model.model, monitor, imgsz, **options)
    except (UsageError, FileNotFoundError, ValueError, TypeError, KeyError, yaml.YAMLError, pickle.UnpicklingError) as e:
        print(f"spikeyolo energy: error: {e}", file=sys.stderr)
        return 2
    run_dir = _run_dir(args)
    print(report.format_table())
    report.save(run_dir)
    print(f"results: {run_dir}")
    return 0
