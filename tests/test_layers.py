"""The package's floors: every import runs from a floor to the same or a lower one, and no modules import in a circle.

Floors, bottom to top: ``cfg``/``utils`` → ``nn`` (the model) → ``spike``/``analysis``/``checkpoints``
(libraries on the model) → ``events``/``data`` (data code) → ``engine`` (ultralytics subclasses) →
``commands`` (every ``main``). Imports inside functions count too: a lazy import that runs upward
is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spikeyolo"
FLOORS = (("cfg", "utils"), ("nn",), ("spike", "analysis", "checkpoints"), ("events", "data"), ("engine",), ("commands",))
# the package root re-exports SpikeYOLO (engine floor); ``python -m spikeyolo`` is a command
ROOT_FLOORS = {"spikeyolo": 4, "spikeyolo.__main__": 5}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (``from . import x`` resolved to the module ``x``)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def floor(module: str, root_name: str = "spikeyolo") -> int:
    if module in ROOT_FLOORS:
        return ROOT_FLOORS[module]
    sub = module.removeprefix(f"{root_name}.").split(".")[0]
    for level, names in enumerate(FLOORS):
        if sub in names:
            return level
    raise AssertionError(f"{module} is on no floor: add its package to FLOORS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if floor(b) > floor(a))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_runs_up_a_floor():
    assert upward_imports(import_graph(PACKAGE)) == []


def test_no_import_circle():
    assert circles(import_graph(PACKAGE)) == []


def test_every_module_with_a_main_is_a_command():
    mains = [module_name(p, PACKAGE) for p in PACKAGE.rglob("*.py") if "__main__" in p.read_text() or
             any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(p.read_text()).body)]
    assert mains and all(floor(m) == len(FLOORS) - 1 for m in mains), mains


@pytest.fixture
def toy_package(tmp_path: Path) -> Path:
    root = tmp_path / "spikeyolo"
    for rel, text in {
        "__init__.py": "",
        "nn/__init__.py": "",
        "nn/model.py": "from ..engine import trainer\n",  # upward
        "engine/__init__.py": "",
        "engine/trainer.py": "def f():\n    from ..nn.model import x\n",
        "analysis/__init__.py": "",
        "analysis/a.py": "from . import b\n",
        "analysis/b.py": "import spikeyolo.analysis.a\n",  # a circle on one floor
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_checks_find_upward_imports_and_circles(toy_package):
    graph = import_graph(toy_package)
    assert upward_imports(graph) == ["spikeyolo.nn.model -> spikeyolo.engine.trainer"]
    assert circles(graph) == [["spikeyolo.analysis.a", "spikeyolo.analysis.b"],
                              ["spikeyolo.engine.trainer", "spikeyolo.nn.model"]]
