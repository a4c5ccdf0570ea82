"""`python -m compute report --format latex` compiles with pdflatex: the full table as `table*`, split into
tables that fit a two-column paper with every number printed at 7 pt or more (measured in the PDF with
poppler's `pdftotext -bbox`), the summary without an overfull box, and hostile store text (class names,
model ids, methods) typeset literally. Skips, saying why, where no TeX is installed (`make texlive`:
texlive-latex-recommended provides pdflatex and booktabs, poppler-utils pdftotext)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import polars as pl
import pytest

from analysis import escape, report
from store import layout, vocabulary
from store.catalog import Catalog
from testkit.study import write_study

PDFLATEX = shutil.which("pdflatex")
PDFTOTEXT = shutil.which("pdftotext")
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


def compile_latex(body: str, folder: Path, twocolumn: bool, encoding: str = "T1") -> str:
    """pdflatex a document holding `body` (no shell escape, stop at the first error); its log."""
    options = "[twocolumn]" if twocolumn else ""
    fontenc = f"\\usepackage[{encoding}]{{fontenc}}\n" if encoding else ""
    source = (f"\\documentclass{options}{{article}}\n{fontenc}\\usepackage{{booktabs}}\n"
              f"\\usepackage{{graphicx}}\n\\begin{{document}}\n{body}\n\\end{{document}}\n")
    (folder / "table.tex").write_text(source)
    result = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "table.tex"],
                            cwd=folder, capture_output=True, text=True, timeout=60)
    log = (folder / "table.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    return log


def test_summary_compiles_without_an_overfull_box(catalog, tmp_path) -> None:
    table = report.report_table(catalog, "group")
    text = report.render_report(table, "latex", columns="summary,families", notes=report.report_notes(catalog))
    # Two seeds' t intervals ("52--100") make it wider than a column at 7 pt: it spans both, unshrunk.
    assert text.startswith("% ") and "booktabs" in text.splitlines()[0] and r"\begin{table*}[t]" in text
    one_column = report.render_report(table.filter(pl.col("column_name").is_in(["clean", "mean corruption"])),
                                      "latex", columns="summary,families")
    assert r"\begin{table}[t]" in one_column and "resizebox" not in text + one_column
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
    text = report.render_report(table, "latex", level="model", columns="summary,families", notes=[HOSTILE])
    assert escape.latex(HOSTILE) in text
    log = compile_latex(text + "\\typeout{REACHED THE END}", tmp_path, twocolumn=True)
    assert "(/etc/hostname" not in log and "REACHED THE END" in log  # no \\input ran, no \\end{document} ended it
    markdown = report.render_report(table, "markdown", level="model", notes=[HOSTILE])
    assert escape.markdown_cell(HOSTILE) in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len({len(re.split(r"(?<!\\)\|", line)) for line in rows}) == 1  # no cell adds a column
    printed = pl.read_csv(io.StringIO(report.render_report(table, "csv", level="model")))
    assert "'" + FORMULA in printed["row"].to_list() and FORMULA not in printed["row"].to_list()


# -- the default full table in print: every number at 7 pt or more -----------------------------------------

REFERENCE_DIGITS = "9876543210"  # set at exactly 7 pt after the tables: what a 7-pt number measures


def word_heights(pdf: Path) -> list[tuple[str, float]]:
    """(text, height in pt) of every word pdftotext -bbox finds: the height of its font's box at its size."""
    html = subprocess.run([PDFTOTEXT, "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    words = ElementTree.fromstring(re.sub(r"<!DOCTYPE[^>]*>", "", html).replace(' xmlns="http://www.w3.org/1999/xhtml"', ""))
    return [(w.text or "", float(w.get("yMax")) - float(w.get("yMin"))) for w in words.iter("word")]


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
@pytest.mark.skipif(PDFTOTEXT is None, reason="no pdftotext on PATH (poppler-utils)")
def test_the_default_full_table_prints_every_number_at_7_pt_or_more(demo_shaped, tmp_path) -> None:
    catalog = Catalog(demo_shaped)
    text = report.render_report(report.report_table(catalog, "group"), "latex", notes=report.report_notes(catalog))
    tables = text.count(r"\begin{table*}")
    assert tables >= 2 and "resizebox" not in text and r"\tiny" not in text  # split, never shrunk
    # Type 1 Computer Modern (no T1 font encoding): pdftotext sizes a word's box from the font's ascent and
    # descent, the same for every size of the font, so a 7-pt number measures as the 7-pt reference digits.
    log = compile_latex(text + f"\\clearpage\n{{\\fontsize{{7}}{{8}}\\selectfont {REFERENCE_DIGITS}}}\n", tmp_path,
                        twocolumn=True, encoding="")
    assert "Overfull \\hbox" not in log
    heights = word_heights(tmp_path / "table.pdf")
    seven = [h for w, h in heights if w == REFERENCE_DIGITS]
    assert len(seven) == 1 and seven[0] > 5
    numbers = [(w, h) for w, h in heights if re.search(r"\d", w) and w != REFERENCE_DIGITS]
    assert len(numbers) > 15 * 24  # every row's 24 means and intervals
    small = [(w, round(h / seven[0] * 7, 2)) for w, h in numbers if h < seven[0] - 0.01]
    assert not small, f"numbers printed below 7 pt: {small[:10]}"
