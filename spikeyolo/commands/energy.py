"""``spikeyolo energy``: firing rates, synaptic operations and energy per layer, with plots.

Writes ``energy.json``, ``energy.csv``, ``firing_rates.png`` and ``energy.png`` into the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from ultralytics.utils import SETTINGS
from ultralytics.utils.files import increment_path

from ..analysis import EnergyReport, energy_costs, energy_report, energy_rows, measure_rates_on_images
from ..analysis.synops import synapse_geometry
from ..analysis.template import compare_geometry, load_template, template_geometry, template_rates
from ..engine.model import SpikeYOLO
from .arguments import UsageError, parse_arguments
from .energy_options import ENERGY_KEYS, nominal_imgsz, pop_energy_options
from .mode import Mode
from .val import val

USAGE = """usage: {prog} model=... (source=... | data=...) | template=... [key=value ...]

  {prog} model=best.pt source=images/ imgsz=640     # any images, no labels, no mAP
  {prog} model=best.pt data=data.yaml imgsz=640     # mAP too (= spikeyolo val energy=True)
  {prog} template=snn_yolov8s [model=snn_yolov8s.yaml]   # the published spreadsheet (packaged), or a JSON path

keys: energy_preset=fp32|fp16|int8 (45 nm energy per operation), first_layer=mac|template (how the
pixel-fed convolution is charged), imgsz, batch, project, name, exist_ok."""


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


def energy(argv: list[str]) -> int:
    """Energy of a model on images (``source=``), on a dataset with mAP (``data=``), or of the spreadsheet."""
    args = parse_arguments(argv, extra_keys={**ENERGY_KEYS, "template": str})
    if "template" in args:
        return _template(args)
    if "data" in args:
        return val([*argv, "energy=True"])
    options = pop_energy_options(args)
    if "model" not in args or "source" not in args:
        raise UsageError("give model= and source= (images) or data= (dataset YAML), or template=")
    model = SpikeYOLO(args.pop("model"))
    imgsz = nominal_imgsz(model, args.pop("imgsz", None))
    monitor = measure_rates_on_images(model.model, args.pop("source"), imgsz, int(args.pop("batch", 8)))
    report = energy_report(model.model, monitor, imgsz, **options)
    run_dir = _run_dir(args)
    print(report.format_table())
    report.save(run_dir)
    print(f"results: {run_dir}")
    return 0


MODE = Mode("energy", "firing rates, synaptic operations and energy per layer, with plots", USAGE, energy)
