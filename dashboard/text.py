"""What a page hands the visitor: store and visitor text shown as written (never as Markdown, never with a
hosted store's server path), text composed into a filter, and result frames as downloads.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from analysis import escape as escape_to
from dashboard.hosting import hosting, store_label, store_path
from store import provenance


def escape(text: str) -> str:
    """Text shown inside Markdown exactly as written: every punctuation mark that Markdown could read as
    formatting, a link or an image is backslash-escaped (and line breaks become spaces)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])", r"\\\1", " ".join(text.splitlines()))


def code(value: Any) -> str:
    """A store or visitor string as Markdown inline code: shown as typed, never as a link, image, HTML or
    formatting (a fence longer than any run of backticks inside; line breaks become spaces)."""
    text = " ".join(str(value).splitlines()) or " "
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def public(message: str) -> str:
    """A message with the open store's server path replaced by its name (hosting modes)."""
    if hosting().allow_any:
        return message
    path = store_path()
    for prefix in sorted({str(Path(path).resolve()), str(Path(path).absolute())}, key=len, reverse=True):
        message = message.replace(prefix, store_label())
    return message


def downloads(frame: pl.DataFrame, name: str) -> None:
    """CSV and Parquet download buttons for the current query result (built only when clicked). CSV cells a
    spreadsheet would run as a formula are made inert (analysis.escape.csv)."""
    def parquet() -> bytes:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        return buffer.getvalue()

    left, right, _ = st.columns([1, 1, 6])
    left.download_button("CSV", lambda: escape_to.csv(frame), file_name=f"{name}.csv", mime="text/csv",
                         on_click="ignore", key=f"{name}-csv", icon=":material/download:")
    right.download_button("Parquet", parquet, file_name=f"{name}.parquet",
                          mime="application/vnd.apache.parquet", on_click="ignore", key=f"{name}-parquet",
                          icon=":material/download:")


def unpaired_note(manifest: dict[str, Any]) -> str:
    """A caption for pages that compare one sample clean vs corrupted, when the store records settings whose
    images are other photographs than the clean ones (store.provenance.unpaired); "" when there are none."""
    names = provenance.unpaired(manifest)
    return (f"Unpaired: the images of {', '.join(map(code, names))} are other photographs of the same class, not "
            "copies of the clean images (Tiny-ImageNet-C without --clean-dir), so a sample's clean-vs-corrupted "
            "comparison there compares two images.") if names else ""
