"""The report's words and options on a demo-shaped store (testkit.study.write_demo_shaped): one note per
kind, each a capitalised sentence naming the reference; escaped once per format; negative numbers with a
minus sign; rows named by what was done to them; --columns, --intervals and --split."""

from __future__ import annotations

import re

import polars as pl
import pytest

from analysis import report
from store.catalog import Catalog


@pytest.fixture(scope="module")
def table(demo_shaped) -> pl.DataFrame:
    return report.report_table(Catalog(demo_shaped), "group")


@pytest.fixture(scope="module")
def notes(demo_shaped) -> list[str]:
    return report.report_notes(Catalog(demo_shaped), "group")


def test_notes_are_one_capitalised_sentence_per_kind_naming_the_reference(demo_shaped, notes) -> None:
    assert [note.split(":")[0] for note in notes] == ["Reference", "Relative mCE",
                                                      "Left out of relative mCE because the reference's error rises "
                                                      "by less than 0.05"]
    assert all(note[0].isupper() and not note.endswith(".") for note in notes)
    assert "its base" in notes[0] and "small_cnn-channel-50-s0 for small_cnn-channel-int8-50-s0" in notes[0]
    left_out = notes[2].split(": ", 1)[1].split(", ")
    assert len(left_out) >= 2 and all(re.fullmatch(r"[a-z_]+ \(\d+ of 15 groups\)", item) for item in left_out)
    chosen = report.report_notes(Catalog(demo_shaped, reference="small_cnn-dense-s0"), "model")
    assert chosen[0] == "Reference: every model is compared with the chosen reference, small_cnn-dense-s0"
    assert "of 15 models" in chosen[2]


def test_each_format_escapes_once(table, notes) -> None:
    markdown = report.render_report(table, "markdown", notes=notes)
    assert "Hendrycks & Dietterich" in markdown and "&amp;" not in markdown
    latex = report.render_report(table, "latex", notes=notes)
    assert r"Hendrycks \& Dietterich" in latex and r"\\&" not in latex and "&amp;" not in latex


def test_rows_are_named_by_what_was_done_to_them(table) -> None:
    assert report.row_label("channel", 0.5, 0.7485) == "channels 50 % (weights 75 %)"
    assert report.row_label("int8", 0.0, 0.0) == "int8"
    assert report.row_label("channel+int8", 0.5, 0.7485) == "channels 50 % + int8 (weights 75 %)"
    assert report.row_label("lrr", 0.9, 0.9) == "lrr 90 %" and report.row_label("dense", 0.0, 0.0) == "dense"
    markdown = report.render_report(table, "markdown")
    assert "| a-channel-50 | channels 50 % (weights 75 %) | 1 |" in markdown
    assert "| a-int8-0 | int8 | 1 |" in markdown and " 0 %" not in markdown
    latex = report.render_report(table, "latex")
    assert "\nchannels 50 \\% & " in latex and "\nweights 75 \\%, 1 seed & " in latex


def test_negative_numbers_print_with_a_minus_sign_never_as_a_double_hyphen() -> None:
    table = pl.DataFrame({"row": ["a", "b"], "method": ["dense", "lrr"], "target_sparsity": [0.0, 0.9],
                          "seeds": [1, 1], "column_name": [report.DROP] * 2, "mean": [-0.5, 0.2],
                          "low": [-1.04, 0.1], "high": [-0.336, 0.3], "p_value": [None, None]})
    latex = report.render_report(table, "latex")
    assert "$-$50.0" in latex and "$-$104 to $-$33" in latex and "10--30" in latex
    assert not re.search(r"\d--(\$-\$|-)", latex)  # never "-104--36"
    markdown = report.render_report(table, "markdown")
    assert "**−0.500** [−1.040, −0.336]" in markdown and "-0.5" not in markdown


def test_columns_intervals_and_split_shape_the_table(table) -> None:
    summary = report.render_report(table, "latex", columns="summary,families")
    assert re.search(r"Method & Clean & Noise & Blur & Weather & Digital & Corr\. & mCE\S* \\\\", summary)
    with pytest.raises(ValueError, match="unknown column group 'bogus'"):
        report.select_columns(table, "summary,bogus")
    inline = report.render_report(table, "latex", intervals="inline", split=3)
    assert inline.count(r"\begin{table*}") == 3 and "(part 3 of 3)" in inline and re.search(r"\d \[\d+--\d+\]", inline)
    none = report.render_report(table, "latex", intervals="none", split=1)
    assert none.count(r"\begin{table") == 1 and "--" not in none.split(r"\midrule")[1].replace(" -- ", "")
    assert "the intervals (" in none and "are in the CSV output" in none
    rows = report.render_report(table, "markdown", intervals="row", columns="summary")
    assert "|  |  | 95 % interval | [" in rows
    assert len(report.render_report(table, "csv").splitlines()[0].split(",")) == len(report.CSV_COLUMNS)


def test_report_command_refuses_bad_options_with_one_line(demo_shaped, cli) -> None:
    columns = cli("report", "--store", str(demo_shaped), "--columns", "summary,everything")
    assert columns.returncode == 2 and columns.stderr.startswith("error: --columns: unknown column group 'everything'")
    split = cli("report", "--store", str(demo_shaped), "--split", "0")
    assert split.returncode == 2 and split.stderr.strip() == "error: --split: 0 tables; give 1 or more"
    good = cli("report", "--store", str(demo_shaped), "--format", "latex", "--columns", "summary", "--split", "1")
    assert good.returncode == 0 and good.stdout.count(r"\begin{table") == 1
