"""Store text leaves prunescope as data: LaTeX, CSV and Markdown exits (analysis.escape)."""

import csv as csv_module
import html
import io

import polars as pl
import pytest

from analysis import escape

HOSTILE = [r"\input{/etc/passwd}", r"\immediate\write18{rm -rf ~}", "a & b % c # d $ e _ f ^ g ~ h",
           "{}<>|", "line\nbreak"]


@pytest.mark.parametrize("text", HOSTILE)
def test_latex_leaves_no_control_sequence_or_special_character(text):
    out = escape.latex(text)
    # every backslash left starts one of the text commands escape.latex emits, or escapes a special
    for command in (r"\textbackslash{}", r"\textasciitilde{}", r"\textasciicircum{}", r"\textless{}",
                    r"\textgreater{}", r"\textbar{}", r"\&", r"\%", r"\$", r"\#", r"\_", r"\{", r"\}"):
        out = out.replace(command, "")
    assert not set(out) & set("\\&%$#_{}~^\n")


def test_latex_keeps_plain_text_and_unicode():
    assert escape.latex("ResNet-18 dogs é") == "ResNet-18 dogs é"


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                  "\tx", "\rx"])
def test_csv_neutralises_formula_cells(cell):
    frame = pl.DataFrame({"method": [cell], "accuracy": [-0.5]})
    rows = list(csv_module.reader(io.StringIO(escape.csv(frame))))
    assert rows[1][0] == "'" + cell
    assert rows[1][1] == "-0.5"  # numbers stay numbers


def test_csv_leaves_ordinary_text_and_nulls():
    frame = pl.DataFrame({"method": ["magnitude", None]})
    assert escape.csv(frame).splitlines() == ["method", "magnitude", ""]


def test_markdown_cell_cannot_break_a_table_row_or_open_a_tag():
    cell = escape.markdown_cell("a|b\nc <img src=x>")
    assert "|" not in cell.replace("\\|", "")
    assert "\n" not in cell and "<" not in cell



@pytest.mark.parametrize("text", ["<script>alert(1)</script>", '" onmouseover="x', "' onload='x", "a & b",
                                  "x\x00\x1b<y"])
def test_html_leaves_no_tag_attribute_break_or_control_character(text):
    out = escape.html(text)
    assert not set(out) & set("<>\"'\x00\x1b")
    assert html.unescape(out) == "".join(char for char in text if char.isprintable())  # the text, literally


def test_markdown_cell_escapes_an_ampersand_once_and_only_where_it_starts_an_entity():
    assert escape.markdown_cell("Hendrycks & Dietterich") == "Hendrycks & Dietterich"
    assert escape.markdown_cell("&lt;b&gt; &#60;") == "&amp;lt;b&amp;gt; &amp;#60;"  # shown as typed, not as "<b>"


def _unescaped(cell: str, characters: str) -> list[str]:
    """The characters of `characters` in a Markdown cell that no backslash escapes."""
    plain = cell.replace("\\\\", "")  # an escaped backslash escapes nothing after it
    return [char for index, char in enumerate(plain) if char in characters and (index == 0 or plain[index - 1] != "\\")]


@pytest.mark.parametrize("method", ["![x](http://attacker.example/x.png)", "[click](javascript:alert(1))",
                                    "\\![x](http://attacker.example/x.png)"])
def test_a_markdown_image_or_link_in_a_cell_is_shown_never_fetched(method):
    """A method named like a Markdown image stayed one in the report's markdown cells; now the brackets,
    parentheses and `!` are escaped (a leading backslash of its own cannot undo that)."""
    assert _unescaped(escape.markdown_cell(method), "[]()!") == []
    table = pl.DataFrame({"row": [method], "method": [method], "target_sparsity": [0.5], "seeds": [1],
                          "column_name": ["clean"], "mean": [0.9], "low": [0.8], "high": [0.95], "p_value": [None]})
    from analysis import report

    markdown = report.render_report(table, "markdown")
    row = next(line for line in markdown.splitlines() if "attacker" in line or "click" in line)
    store_text = row.split(" | ")[:2]  # the row id and its label: the store's text (the rest are our numbers)
    assert all(_unescaped(cell.strip("| "), "[]()!") == [] for cell in store_text), row
    assert "](" not in row.replace("\\](", ""), row  # no link anywhere in the row
