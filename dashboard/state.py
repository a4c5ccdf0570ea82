"""What every page shares: the open store, its cached catalog and query results, and the selection.

The selection (methods, model, comparison model, corruption, severity, metric) lives in
`st.session_state` under the keys of the sidebar widgets, so every page reads the same values and a click
on a chart mark (`select_from_chart`, an `on_select` callback) changes them everywhere.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from store import queries, schema
from store.catalog import Catalog
from store.writer import StoreError

ENV = "PRUNESCOPE_STORE"

# The matrix metrics a user may pick: name -> label (values per cell, see views/matrix.py).
METRICS: dict[str, str] = {
    "accuracy": "accuracy",
    "drop_vs_dense": "accuracy drop vs dense",
    "relative_ce": "relative corruption error",
    "angle_true": "mean angle to the true class (°)",
    "feature_norm": "mean feature norm",
    "margin": "mean margin",
    "loss": "mean cross-entropy loss",
}
NO_MODEL = ""  # the comparison selectbox's "none" option
QUERY_MODULES = ("store.queries", "store.analytics", "store.uncertainty", "store.predictors")
# Rows of the study pages: replicate groups (seeds of one arch, method and sparsity) or single models.
LEVELS: dict[str, str] = {"group": "groups (mean over seeds)", "model": "individual models"}

# A chart mark's field -> the selection key it sets (see select_from_chart).
_FIELD_KEYS = {"model_id": "model", "model_b": "compare", "corruption": "corruption", "severity": "severity",
               "sample_id": "sample"}


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


def store_version(path: str | Path) -> tuple[float, ...]:
    """Changes whenever models, partitions or embeddings are added, so cached results refresh."""
    root = Path(path)
    watched = (root / schema.MODELS, root / schema.COMPLETE, root / schema.EMBEDDINGS,
               *(root / schema.EMBEDDINGS).glob("*.parquet"))
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in watched)


@st.cache_resource(show_spinner=False, max_entries=4)
def _catalog(path: str, version: tuple[float, ...]) -> Catalog:
    return Catalog(path)


def _open(path: str) -> Catalog:
    """The cached catalog of `path` (StoreError when it is not a store)."""
    return _catalog(str(Path(path).resolve()), store_version(path))


def open_catalog() -> Catalog:
    """The open store's catalog; otherwise tell the user what is wrong and how to fix it, and stop the page."""
    path = store_path()
    if not Path(path).is_dir():
        st.warning(f"No store at `{path}`. Build the demo with `make demo` (or "
                   f"`python -m compute demo --out {path}`), or pick another directory in the sidebar.")
        st.stop()
    try:
        return _open(path)
    except StoreError as error:
        st.error(str(error))
        st.stop()


@st.cache_data(show_spinner=False, max_entries=256)
def _query(module: str, name: str, path: str, version: tuple[float, ...], args: tuple, kwargs: tuple) -> Any:
    function = getattr(importlib.import_module(module), name)
    return function(_catalog(path, version), *args, **dict(kwargs))


def query(function: Callable[..., Any], catalog: Catalog, *args: Any, **kwargs: Any) -> Any:
    """`function(catalog, *args, **kwargs)` for a named query of store.queries or store.analytics, cached
    per store version, so revisiting a page or another session asking the same is instant."""
    if function.__module__ not in QUERY_MODULES:
        raise ValueError(f"{function.__module__}.{function.__name__} is not a named store query")
    return _query(function.__module__, function.__name__, str(catalog.root), store_version(catalog.root),
                  args, tuple(sorted(kwargs.items())))


# -- the shared selection ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """What the user is looking at; every page reads it, chart clicks change it."""

    methods: tuple[str, ...]
    model: str
    compare: str | None
    corruption: str
    severity: int  # 0 for clean images
    metric: str
    level: str = "group"  # "group" or "model" (LEVELS)

    @property
    def setting(self) -> str:
        """The corruption and severity as a person reads them."""
        return "clean images" if self.corruption == schema.CLEAN else f"{self.corruption}, severity {self.severity}"


def _settle(key: str, options: Sequence[Any], default: Any) -> None:
    """Make st.session_state[key] one of `options` before its widget is drawn (a store change or a chart
    click may have left something else there)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def sidebar() -> None:
    """The store picker and the shared selection, drawn on every page."""
    store_path()  # initialise the widget's state from the command line on first run
    st.sidebar.text_input("Store directory", key="store", help="a directory written by "
                          "`python -m compute demo` or `python -m compute extract`")
    try:
        catalog = _open(store_path()) if Path(store_path()).is_dir() else None
    except StoreError:
        catalog = None  # the page explains it (open_catalog)
    models = query(queries.models, catalog) if catalog is not None else None
    if models is None or models.is_empty():
        return
    ids = models["model_id"].to_list()
    dense = dict(zip(ids, models["dense_model_id"].to_list(), strict=True))
    methods = list(dict.fromkeys(models["method"].to_list()))
    corruptions = [schema.CLEAN, *catalog.manifest["corruptions"]]
    severities = [int(s) for s in catalog.manifest["severities"]] or [1]

    bar = st.sidebar
    bar.subheader("Selection")
    chosen = st.session_state.get("methods")
    if chosen is None or not set(chosen) <= set(methods):
        st.session_state["methods"] = methods
    bar.multiselect("Methods", methods, key="methods", help="the methods shown on the matrix and the "
                    "similarity pages")
    _settle("model", ids, next((i for i in ids if models["method"][ids.index(i)] != "dense"), ids[0]))
    bar.selectbox("Model", ids, key="model", help="the model the geometry pages show; click a matrix cell "
                  "or a model in the similarity map to change it")
    _settle("compare", [NO_MODEL, *ids], dense.get(st.session_state["model"]) or NO_MODEL)
    bar.selectbox("Compare with", [NO_MODEL, *ids], key="compare", format_func=lambda m: m or "(none)",
                  help="a second model for the deltas on the Local geometry page")
    _settle("corruption", corruptions, schema.CLEAN)
    bar.selectbox("Corruption", corruptions, key="corruption")
    _settle("severity", severities, severities[-1] if len(severities) < 3 else severities[len(severities) // 2])
    bar.select_slider("Severity", severities, key="severity",
                      disabled=st.session_state["corruption"] == schema.CLEAN,
                      help="ignored for clean images (severity 0)")
    bar.segmented_control("Rows", list(LEVELS), key="level", format_func=LEVELS.get, required=True,
                          default="group", help="groups: models differing only in seed together, mean and "
                          "95 % interval across seeds; models: each model on its own row")
    _settle("metric", list(METRICS), "accuracy")
    bar.selectbox("Metric", list(METRICS), key="metric", format_func=METRICS.get,
                  help="what the evaluation matrix shows")


def selection() -> Selection:
    """The shared selection (the sidebar draws it before any page runs)."""
    state = st.session_state
    corruption = state.get("corruption", schema.CLEAN)
    return Selection(methods=tuple(state.get("methods") or ()), model=state.get("model", ""),
                     compare=state.get("compare") or None, corruption=corruption,
                     severity=0 if corruption == schema.CLEAN else int(state.get("severity", 0)),
                     metric=state.get("metric", "accuracy"), level=state.get("level") or "group")


def apply_point(point: Mapping[str, Any]) -> None:
    """Copy a clicked mark's fields (model_id, corruption, severity, model_b, sample_id, ...) into the
    shared selection; a clean setting keeps the severity slider where it was."""
    values = {_FIELD_KEYS[field]: value for field, value in point.items() if field in _FIELD_KEYS}
    if values.get("corruption") == schema.CLEAN or values.get("severity") == 0:
        values.pop("severity", None)
    for key, value in values.items():
        st.session_state[key] = int(value) if key in ("severity", "sample") else value


def select_from_chart(chart_key: str) -> None:
    """`on_select` callback of a chart drawn with `key=chart_key`: the first clicked point becomes the
    selection (callbacks run before the page, so the sidebar widgets may still be changed)."""
    event = st.session_state.get(chart_key)
    for points in (event.selection.values() if event else ()):
        if isinstance(points, list) and points:
            apply_point(points[0])
            return


def sample_link() -> None:
    """A link to the Sample page for the sample last clicked in a chart, once there is one."""
    sample = st.session_state.get("sample")
    if sample is not None:
        st.page_link("views/sample.py", label=f"Open sample #{sample}", icon=":material/image:",
                     query_params={"sample": str(sample)})


def chart(figure: Any, key: str | None = None, stretch: bool = True) -> None:
    """Draw an Altair chart (full width, or as wide as it says with stretch=False); with a key, a click on
    one of its marks updates the selection."""
    width = "stretch" if stretch else "content"
    if key is None:
        st.altair_chart(figure, width=width)
    else:
        st.altair_chart(figure, width=width, key=key, on_select=functools.partial(select_from_chart, key))


def downloads(frame: pl.DataFrame, name: str) -> None:
    """CSV and Parquet download buttons for the current query result (built only when clicked)."""
    def parquet() -> bytes:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        return buffer.getvalue()

    left, right, _ = st.columns([1, 1, 6])
    left.download_button("CSV", frame.write_csv, file_name=f"{name}.csv", mime="text/csv",
                         on_click="ignore", key=f"{name}-csv", icon=":material/download:")
    right.download_button("Parquet", parquet, file_name=f"{name}.parquet",
                          mime="application/vnd.apache.parquet", on_click="ignore", key=f"{name}-parquet",
                          icon=":material/download:")


# -- shared page controls ---------------------------------------------------------------------------------

MAX_MARKS = 5000  # above this many samples a chart gets aggregates from DuckDB, not one mark per sample
BINS = 24  # grid size of the 2-D histograms that replace scatter plots on large studies
MAX_CLASS_PANELS = 20  # more classes than this: the user picks which to show


def class_filter(catalog: Catalog) -> list[int] | None:
    """The classes a per-class view shows: all (None) for up to MAX_CLASS_PANELS classes, else the ones
    the user picks (the first ten to begin with)."""
    names = catalog.manifest["class_names"]
    if len(names) <= MAX_CLASS_PANELS:
        return None
    chosen = st.multiselect("Classes", names, default=names[:10], key="classes", persist_state="session",
                            help=f"this study has {len(names)} classes; pick the ones to show")
    return [names.index(name) for name in chosen]


def quoted(value: str) -> str:
    """A text value as a literal of the filter language (store.filters), for composing a filter."""
    return "'" + value.replace("'", "''") + "'"
