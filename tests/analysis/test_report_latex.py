"""`python -m compute report --format latex` compiles with pdflatex: the full table as `table*`, the summary
as a `table` that fits one column of a two-column paper without an overfull box, and hostile store text
(class names, model ids, methods) typeset literally. Skips, saying why, where no TeX is installed
(`apt-get install texlive-latex-recommended` provides pdflatex and booktabs)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from analysis import escape, report
from store import layout, vocabulary
from testkit.study import write_study

PDFLATEX = shutil.which("pdflatex")
pytestmark = pytest.mark.skipif(PDFLATEX is None, reason="no pdflatex on PATH (texlive-latex-recommended)")

# Two seeds each of dense, lrr-90 and biprop-80 on every common corruption (one severity): four families.
MODELS = [(f"{m}-s{seed}", m, sparsity, seed) for m, sparsity in (("dense", 0.0), ("lrr", 0.9), ("biprop", 0.8))
          for seed in (0, 1)]
SETTINGS = [(layout.CLEAN, 0), *((c, 1) for c in vocabulary.COMMON_CORRUPTIONS)]
HOSTILE = r"\input{/etc/hostname}#1 & 50% $x$_{y}^~ | \\ \end{document}"
FORMULA = "=HYPERLINK(\"http://example.com\")"


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("latex"), models=MODELS, settings=SETTINGS, num_samples=60)


def compile_latex(body: str, folder: Path, twocolumn: bool) -> str:
    """pdflatex a document holding `body` (no shell escape, stop at the first error); its log."""
    options = "[twocolumn]" if twocolumn else ""
    source = (f"\\documentclass{options}{{article}}\n\\usepackage[T1]{{fontenc}}\n\\usepackage{{booktabs}}\n"
              f"\\usepackage{{graphicx}}\n\\begin{{document}}\n{body}\n\\end{{document}}\n")
    (folder / "table.tex").write_text(source)
    result = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "table.tex"],
                            cwd=folder, capture_output=True, text=True, timeout=60)
    log = (folder / "table.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    return log


def test_summary_fits_one_column_of_a_two_column_paper(catalog, tmp_path) -> None:
    table = report.report_table(catalog, "group")
    text = report.render_report(table, "latex", columns="summary", notes=report.report_notes(catalog))
    assert text.startswith("% ") and "booktabs" in text.splitlines()[0] and r"\begin{table}[t]" in text
    assert all(f"& {name} " in text or f"& {name} \\\\" in text for name in ("Noise", "Blur", "Weather", "Digital"))
    log = compile_latex(text, tmp_path, twocolumn=True)
    assert "Overfull \\hbox" not in log


def test_full_table_compiles_as_table_star_with_a_legend(catalog, tmp_path) -> None:
    table = report.report_table(catalog, "model")
    text = report.render_report(table, "latex", level="model", notes=report.report_notes(catalog))
    assert r"\begin{table*}[t]" in text and "Gauss = gaussian noise" in text and "Wilson" in text
    log = compile_latex(text, tmp_path, twocolumn=True)
    assert "Overfull \\hbox" not in log


def test_hostile_store_text_compiles_and_is_not_executed(catalog, tmp_path) -> None:
    table = report.report_table(catalog, "model").with_columns(
        pl.col("row").str.replace("biprop-s0", HOSTILE, literal=True).str.replace("lrr-s0", FORMULA, literal=True),
        pl.col("method").str.replace("lrr", HOSTILE, literal=True))
    text = report.render_report(table, "latex", level="model", columns="summary", notes=[HOSTILE])
    assert escape.latex(HOSTILE) in text
    log = compile_latex(text + "\\typeout{REACHED THE END}", tmp_path, twocolumn=True)
    assert "(/etc/hostname" not in log and "REACHED THE END" in log  # no \\input ran, no \\end{document} ended it
    markdown = report.render_report(table, "markdown", level="model", notes=[HOSTILE])
    assert escape.markdown_cell(HOSTILE) in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len({len(re.split(r"(?<!\\)\|", line)) for line in rows}) == 1  # no cell adds a column
    printed = pl.read_csv(io.StringIO(report.render_report(table, "csv", level="model")))
    assert "'" + FORMULA in printed["row"].to_list() and FORMULA not in printed["row"].to_list()
