"""What every page shares: which store is open, its cached catalog, and cached query results."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import polars as pl
import streamlit as st

from store import queries, schema
from store.catalog import Catalog
from store.writer import StoreError

ENV = "PRUNESCOPE_STORE"


def _store_from_argv() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.store


def default_store() -> str:
    """`--store DIR` after `--` on the streamlit command line, else $PRUNESCOPE_STORE, else data/demo."""
    return _store_from_argv() or os.environ.get(ENV) or "data/demo"


def store_path() -> str:
    """The store the user picked in the sidebar (initialised from the command line or environment)."""
    if "store" not in st.session_state:
        st.session_state["store"] = default_store()
    return st.session_state["store"]


def store_version(path: str) -> tuple[float, int]:
    """Changes whenever models or partitions are added, so cached results refresh after a new extract."""
    root = Path(path)
    models_file = root / schema.MODELS
    markers = root / schema.COMPLETE
    return (models_file.stat().st_mtime if models_file.exists() else 0.0,
            len(list(markers.glob("*.json"))) if markers.is_dir() else 0)


@st.cache_resource(show_spinner=False)
def _catalog(path: str, version: tuple[float, int]) -> Catalog:
    return Catalog(path)


def open_catalog() -> Catalog | None:
    """The open store's catalog, or None after telling the user what is wrong and how to fix it."""
    path = store_path()
    if not Path(path).is_dir():
        st.warning(f"No store at `{path}`. Build the demo with `make demo` (or "
                   f"`python -m compute demo --out {path}`), or pick another directory in the sidebar.")
        return None
    try:
        return _catalog(str(Path(path).resolve()), store_version(path))
    except StoreError as error:
        st.error(str(error))
        return None


@st.cache_data(show_spinner=False, max_entries=32)
def _models(path: str, version: tuple[float, int]) -> pl.DataFrame:
    return queries.models(_catalog(path, version))


@st.cache_data(show_spinner=False, max_entries=32)
def _accuracy_matrix(path: str, version: tuple[float, int]) -> pl.DataFrame:
    return queries.accuracy_matrix(_catalog(path, version))


def models(catalog: Catalog) -> pl.DataFrame:
    return _models(str(catalog.root), store_version(str(catalog.root)))


def accuracy_matrix(catalog: Catalog) -> pl.DataFrame:
    return _accuracy_matrix(str(catalog.root), store_version(str(catalog.root)))


def sidebar() -> None:
    """The store picker, shown on every page."""
    store_path()  # initialise the widget's state from the command line on first run
    st.sidebar.text_input("Store directory", key="store", help="a directory written by "
                          "`python -m compute demo` or `python -m compute extract`")
