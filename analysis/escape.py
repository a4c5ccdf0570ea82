"""Store text leaving prunescope as data, never as markup: one function per exit format.

Class names, model ids, methods and provenance are written by whoever built a store. A report pasted into
a paper, a CSV opened in a spreadsheet, a Markdown table pasted into a README or a static export opened in a
browser must show them literally: no LaTeX control sequence, no spreadsheet formula, no broken table row, no
HTML tag.
"""

from __future__ import annotations

import html as html_module
import re

import polars as pl

_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
    ">": r"\textgreater{}", "|": r"\textbar{}",
}

# OWASP "CSV injection": a cell a spreadsheet would evaluate starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def latex(text: object) -> str:
    """Text typeset literally by LaTeX: every special character becomes its text command, line breaks
    become spaces, and characters outside printable ASCII other than letters are kept as UTF-8."""
    flat = " ".join(str(text).splitlines())
    return "".join(_LATEX.get(char, char) for char in flat if char.isprintable())


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading quote before anything that starts a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv(frame: pl.DataFrame) -> str:
    """The frame as CSV with every text cell made inert (numbers are left as numbers: a negative number
    is data, not a formula, and stays readable as one)."""
    text_columns = [name for name, dtype in frame.schema.items() if dtype in (pl.String, pl.Categorical)]
    safe = frame.with_columns(
        pl.col(name).cast(pl.String).map_elements(csv_cell, return_dtype=pl.String) for name in text_columns)
    return safe.write_csv()


# An ampersand that starts an HTML character reference ("&lt;", "&#60;"): only it needs escaping, so a
# plain "Hendrycks & Dietterich" prints as written rather than as "&amp;".
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")


def markdown_cell(text: object) -> str:
    """Text for one cell of a Markdown table: pipes and backslashes escaped, line breaks become spaces,
    HTML angle brackets as entities so nothing renders as a tag, an ampersand escaped only where it would
    start a character reference (escaped once: a plain "&" stays "&"), and the brackets, parentheses and `!`
    of link and image syntax backslash-escaped, so `![x](http://...)` is shown, never fetched."""
    flat = " ".join(str(text).splitlines())
    flat = _ENTITY.sub("&amp;", flat.replace("\\", "\\\\").replace("|", "\\|"))
    return _LINK_SYNTAX.sub(r"\\\1", flat.replace("<", "&lt;").replace(">", "&gt;"))


_LINK_SYNTAX = re.compile(r"([\[\]()!])")  # what Markdown reads as a link or an image


def html(text: object) -> str:
    """Text for an HTML page (element content or a quoted attribute value): `& < > " '` as character
    references, so a store text never opens a tag, an attribute or a script; control characters other
    than tab and line breaks are dropped."""
    kept = "".join(char for char in str(text) if char.isprintable() or char in "\t\n\r")
    return html_module.escape(kept, quote=True)
