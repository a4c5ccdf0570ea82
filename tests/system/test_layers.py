"""The layers run one way (README "Development", docs/layers.md): every module's imports, read with ast.

    store -> analysis -> compute -> dashboard -> testkit -> bench, tests

A module imports only from its own layer or the layers before it; no two modules import each other (no
cycle, counting imports inside functions too); an import inside a function is allowed for a project
module, or for torch in the dashboard, only when LATE_IMPORTS names it with its reason (a late import
that only dodges a cycle is a cycle); no module re-exports another module's name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("store", "analysis", "compute", "dashboard", "testkit", "bench", "tests")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
RANK["tests"] = RANK["bench"]  # beside each other: neither imports the other (rule below)

# (importing module, imported module) -> why it is imported inside a function, not at the top.
LATE_IMPORTS: dict[tuple[str, str], str] = {
    ("analysis.presets", "analysis.filters"): "sqlglot (0.3 s): the first filter pays it, not the first page",
    ("compute.pixels", "compute.corruptions"): "torch: only when a generated image is asked for",
    ("compute.pixels", "compute.datasets"): "PIL/torchvision: only when a folder-tree image is asked for",
    ("compute.attribution", "compute.geometry"): "torch: only when a visitor asks for attribution maps",
    ("compute.loading", "compute.byo"): "torch: only when a model is loaded, not when a page asks if it may be",
    ("compute.loading", "compute.checkpoint"): "torch: only when a model is loaded, not when a page asks if it may be",
    ("bench.pages", "compute.__main__"): "torch: only when the demo store must be built",
    ("bench.pages", "compute.corruptions"): "torch: only when the large store must be written",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for layer in LAYERS for path in sorted((ROOT / layer).rglob("*.py"))}


MODULES = modules()


def imported(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The modules an import statement loads: `from a import b` is module a.b when that is one, else a."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert not node.level, f"{importer}: relative import (the project imports by absolute name)"
    base = node.module or ""
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def imports(name: str) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function, line) for every import of module `name`."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    late = {id(sub) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))}
    return [(target, id(node) in late, node.lineno) for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) for target in imported(node, name)]


def project(target: str) -> str | None:
    """The project module `target` names (or the package it is in), None for a library."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


GRAPH = {name: imports(name) for name in MODULES}


def test_every_layer_is_found() -> None:
    assert {name.split(".")[0] for name in MODULES} == set(LAYERS)
    assert "store.catalog" in MODULES and "analysis.matrices" in MODULES


def test_no_module_imports_a_later_layer() -> None:
    upward = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
              for name, found in GRAPH.items() for target, _, line in found
              if (module := project(target)) and RANK[module.split(".")[0]] > RANK[name.split(".")[0]]]
    assert upward == []


def test_bench_and_tests_do_not_import_each_other() -> None:
    """They share testkit; only the tests of the benchmarks themselves import bench."""
    crossing = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
                for name, found in GRAPH.items() for target, _, line in found
                if (module := project(target)) and {name.split(".")[0], module.split(".")[0]} == {"bench", "tests"}
                and not (name.startswith("tests.system.test_bench") and module.startswith("bench"))]
    assert crossing == []


def test_no_test_module_imports_another() -> None:
    """What several test modules share is a fixture in tests/conftest.py or a function in testkit."""
    crossing = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
                for name, found in GRAPH.items() if name.startswith("tests.") for target, _, line in found
                if (module := project(target)) and module.startswith("tests")]
    assert crossing == []


def test_no_import_cycle() -> None:
    edges = {name: sorted({m for target, _, _ in found if (m := project(target)) and m != name})
             for name, found in GRAPH.items()}
    # A package's __init__ importing its own modules is how a registry is built, not a cycle.
    edges = {name: [m for m in targets if not (MODULES[name].name == "__init__.py" and m.startswith(name + "."))]
             for name, targets in edges.items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in edges.get(node, []):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_late_imports_are_named_with_their_reason() -> None:
    def needs_reason(name: str, target: str) -> bool:
        return project(target) is not None or (name.startswith("dashboard") and target.split(".")[0] == "torch")

    def reason(name: str, target: str) -> str | None:
        """LATE_IMPORTS' entry for importer `name` and `target` or a package above it."""
        return next((why for (importer, module), why in LATE_IMPORTS.items()
                     if importer == name and (target == module or target.startswith(module + "."))), None)

    late = [(name, project(target) or target, f"{MODULES[name].relative_to(ROOT)}:{line}")
            for name, imports_ in GRAPH.items() if not name.startswith("tests")
            for target, inside, line in imports_ if inside and needs_reason(name, target)]
    unexplained = sorted(where for name, target, where in late if reason(name, target) is None)
    assert unexplained == [], "import at the top, or name it in LATE_IMPORTS with its reason"
    used = {key for key in LATE_IMPORTS for name, target, _ in late
            if key[0] == name and (target == key[1] or target.startswith(key[1] + "."))}
    assert sorted(set(LATE_IMPORTS) - used) == [], "LATE_IMPORTS names an import that no longer exists"


@pytest.mark.parametrize("name", [n for n in MODULES if not n.startswith("tests")])
def test_no_module_re_exports_another_modules_names(name: str) -> None:
    """One import path per name: no `__all__` listing imported names, no `noqa: F401`, no star import."""
    source = MODULES[name].read_text()
    tree = ast.parse(source)
    assert "noqa: F401" not in source
    assert not any(isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)
                   for node in ast.walk(tree))
    imported_names = {alias.asname or alias.name.split(".")[0] for node in tree.body
                      if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            listed = {elt.value for elt in node.value.elts}  # type: ignore[attr-defined]
            assert not listed & imported_names, f"{name}.__all__ re-exports {sorted(listed & imported_names)}"


def test_the_dashboard_loads_no_torch_until_a_visitor_asks_for_attribution() -> None:
    """Every dashboard module, the attribution panel included, imports without torch (seconds on a fresh
    server); torch comes only with attribution maps and regenerated images (the late imports of
    compute.attribution, compute.loading and compute.pixels)."""
    names = [n for n in MODULES if n.startswith("dashboard.") and n != "dashboard.app"
             and not n.startswith("dashboard.views")]
    code = f"import sys\nfor name in {names!r}: __import__(name)\nprint('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert names and shown.stdout.strip() == "False"
