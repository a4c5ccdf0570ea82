"""dashboard.serve: the server every way of serving starts (make serve, the workers, the image, the tests)
imports what the pages import before it listens, so a fresh server's first visitor does not wait for them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dashboard import serve
from dashboard.pages import PAGES

ROOT = Path(__file__).resolve().parents[2]


def test_the_modules_warmed_are_those_the_app_and_every_page_import_when_they_run(tmp_path) -> None:
    script = tmp_path / "page.py"
    script.write_text("import polars as pl\nfrom analysis import presets, not_a_module\nif True:\n"
                      "    import json\n\ndef later():\n    import torch\n")
    assert serve.imported_modules(script) == ["polars", "analysis", "analysis.presets", "analysis.not_a_module",
                                              "json"]
    modules = serve.page_modules()
    for page in PAGES.values():
        assert set(serve.imported_modules(ROOT / "dashboard" / page.script)) <= set(modules), page.script
    assert "dashboard.sidebar" in modules  # app.py's


def test_warming_imports_scipy_altair_and_pandas_but_never_torch() -> None:
    code = ("import json, sys; from dashboard import serve; serve.warm(); "
            "print(json.dumps({m: m in sys.modules for m in ('scipy.stats', 'altair', 'duckdb', 'pandas', 'torch')}))")
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(found.stdout.splitlines()[-1]) == {"scipy.stats": True, "altair": True, "duckdb": True,
                                                         "pandas": True, "torch": False}


def test_help_says_what_it_runs() -> None:
    found = subprocess.run([sys.executable, "-m", "dashboard.serve", "--help"], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    assert "streamlit run dashboard/app.py" in found.stdout
