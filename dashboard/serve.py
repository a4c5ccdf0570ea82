"""One dashboard server, warmed before it listens: `python -m dashboard.serve [STREAMLIT RUN OPTIONS] --
[APP ARGS]` runs `streamlit run dashboard/app.py` with those options and app arguments (`make serve`, each
worker of dashboard.supervise, the Docker image and the tests' servers start it so).

`streamlit run` alone imports what the pages need while the first visitor waits for the first page:
Polars, DuckDB, Altair and its Vega-Lite schema, scipy.stats (about 2 s of a fresh server's 4.6 s first
page on 2 cores, issue 27's profile). Here every module that app.py and the page scripts import (read
from the scripts themselves, so a new page is warmed without a line here) is imported in the main thread,
and one chart is serialised, before Streamlit starts in this same process. Importing scipy here also keeps
page threads from importing it at once (under 20 sessions, a lazy import inside page threads met the
query slots and never finished). The plain `streamlit run dashboard/app.py -- --store DIR` still works;
its first page is the slower one.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

from dashboard.pages import PAGES

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"


def _module_level(node: ast.AST) -> list[ast.AST]:
    """The statements run when the module runs: not those inside its functions (imported when called, as
    torch by an attribution), classes or lambdas."""
    found = [node]
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            found += _module_level(child)
    return found


def imported_modules(script: Path) -> list[str]:
    """The modules `script` imports when it runs (`from a import b` names `a` and `a.b`, which warm()
    skips when b is not a module), in order, without repeats."""
    names: list[str] = []
    for node in _module_level(ast.parse(script.read_text(), filename=str(script))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return list(dict.fromkeys(names))


def page_modules() -> list[str]:
    """Every module app.py and the page scripts (dashboard.pages) import."""
    scripts = [APP, *(APP.parent / page.script for page in PAGES.values())]
    return list(dict.fromkeys(name for script in scripts for name in imported_modules(script)))


def warm() -> list[str]:
    """Import every page module (a name that is not a module, `from a import function`, is skipped) and
    serialise one Altair chart (its schema validator loads once); returns the modules imported."""
    imported = []
    for name in page_modules():
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:  # a module that exists but fails to import is an error of the app
                raise
            continue
        imported.append(name)
    import altair as alt
    import polars as pl

    alt.Chart(pl.DataFrame({"x": [0.0]})).mark_point().encode(x="x").to_dict()
    pl.DataFrame({"x": [0.0]}).to_pandas()  # charts that reshape in pandas import it (0.5 s) on their first frame
    return imported


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return
    warm()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *argv]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
