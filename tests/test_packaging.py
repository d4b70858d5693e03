"""Declared dependencies: ranges in pyproject.toml, exact versions in requirements.txt, and the two agree."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    return [Requirement(r) for r in [*project["dependencies"], *(r for group in extras for r in group)]]


def _pinned() -> dict[str, str]:
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    pins = [Requirement(ln) for ln in lines if ln]
    assert all(len(p.specifier) == 1 and next(iter(p.specifier)).operator == "==" for p in pins), "requirements.txt pins exactly"
    return {p.name.lower().replace("_", "-"): next(iter(p.specifier)).version for p in pins}


def test_runtime_dependencies_are_ranges_except_ultralytics():
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    exact = sorted(r.name for r in map(Requirement, runtime) if any(s.operator == "==" for s in r.specifier))
    assert exact == ["ultralytics"]  # the plugin relies on its internals; everything else is a compatible range


def test_every_declared_dependency_is_pinned_inside_its_range():
    pinned = _pinned()
    for requirement in _declared():
        name = requirement.name.lower().replace("_", "-")
        assert name in pinned, f"requirements.txt does not pin {name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements.txt pins {name}=={pinned[name]}, outside pyproject.toml's {requirement}")
