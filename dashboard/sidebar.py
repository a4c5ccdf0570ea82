"""The sidebar, drawn on every page: the store picker and the shared selection (methods, model, reference,
comparison model, corruption, severity, rows, matrix metric).

The selection lives in `st.session_state` under the keys of the sidebar widgets, so every page reads the
same values (`selection()`) and a click on a chart mark (dashboard.linking) changes them everywhere. The
address carries it too (dashboard.linking.restore / remember): `?store=` and the methods shown (when not
all), model, reference, comparison, corruption, severity, rows and metric, on every page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from analysis import queries
from dashboard import linking
from dashboard.data import cached_catalog, query
from dashboard.hosting import hosting, store_label, store_path
from dashboard.metrics import METRICS
from dashboard.text import code
from store import layout, vocabulary

NO_MODEL = ""  # the comparison selectbox's "none" option
# Rows of the study pages: replicate groups (seeds of one arch, method and sparsity) or single models.
LEVEL_LABELS: dict[str, str] = dict(zip(vocabulary.LEVELS, ("groups (mean over seeds)", "individual models"),
                                         strict=True))
METRIC_HELP = "what the evaluation matrix shows:\n\n" + "\n".join(
    f"- {metric.label}: {metric.meaning}" for metric in METRICS.values())


@dataclass(frozen=True)
class Selection:
    """What the user is looking at; every page reads it, chart clicks change it."""

    methods: tuple[str, ...]
    model: str
    compare: str | None
    corruption: str
    severity: int  # 0 for clean images
    metric: str  # a key of dashboard.metrics.METRICS
    level: str = "group"  # "group" or "model" (store.vocabulary.LEVELS)

    @property
    def setting(self) -> str:
        """The corruption and severity as a person reads them."""
        return "clean images" if self.corruption == layout.CLEAN else f"{self.corruption}, severity {self.severity}"


def _settle(key: str, options: Sequence[Any], default: Any) -> None:
    """Make st.session_state[key] one of `options` before its widget is drawn (a store change or a chart
    click may have left something else there)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def store_picker() -> None:
    """The sidebar's store: a path box (--allow-any-store only), a picker of the stores under the root
    (also `?store=NAME`), or the one served store's name. No other path can be named by a visitor."""
    mode = hosting()
    if mode.allow_any:
        store_path()  # initialise the widget's state from the command line on first run
        st.sidebar.text_input("Store directory", key="store", help="a directory written by "
                              "`python -m compute demo` or `python -m compute extract`")
        return
    requested = st.query_params.get("store")
    if mode.stores is None:
        st.sidebar.caption(f"Store {code(store_label())}")
        if requested is not None and requested != store_label():
            st.sidebar.warning("This server serves one store; the `store` parameter of the address is ignored.")
        st.query_params["store"] = store_label()  # every page's address names the store it shows
        return
    names = mode.names()
    if requested is not None and requested != st.session_state.get("store_in_url"):
        st.session_state["store_in_url"] = requested  # a link or a typed address, applied once
        if requested in names:
            st.session_state["store_name"] = requested
    if requested is not None and requested not in names:
        st.sidebar.warning(f"No store named {code(requested[:200])} is served here; pick one below.")
    if names:
        _settle("store_name", names, names[0])
        st.sidebar.selectbox("Store", names, key="store_name", help="the stores this server serves")
        _store_to_address()  # on every page: navigating keeps it in the address


def _store_to_address() -> None:
    """The address names the store a visitor picks, so a reload or a shared link opens it again."""
    st.query_params["store"] = st.session_state["store_in_url"] = st.session_state["store_name"]


def sidebar() -> None:
    """The store picker and the shared selection, drawn on every page."""
    store_picker()
    try:
        catalog = cached_catalog(store_path()) if Path(store_path()).is_dir() else None
        models = query(queries.models, catalog) if catalog is not None else None
    except Exception:  # noqa: BLE001 (a damaged store: the page explains it, see data.open_catalog)
        catalog = models = None
    if models is None or models.is_empty():
        return
    ids = models["model_id"].to_list()
    # the catalog opened without a chosen reference: each model's reference is its base (None: none held)
    references = dict(zip(ids, models["reference_model_id"].to_list(), strict=True))
    methods = list(dict.fromkeys(models["method"].to_list()))
    corruptions = [layout.CLEAN, *catalog.manifest["corruptions"]]
    severities = [int(s) for s in catalog.manifest["severities"]] or [1]

    chosen = st.session_state.get("methods")
    if chosen is None or not set(chosen) <= set(methods) or st.session_state.get("methods_of") != store_path():
        st.session_state["methods"] = methods  # another store: every method again
    st.session_state["methods_of"] = store_path()
    dropped = [linking.restore("model", ids), linking.restore("reference", ids, what="reference model"),
               linking.restore("compare", ids, what="comparison model"), linking.restore("corruption", corruptions),
               linking.restore("severity", [str(s) for s in severities], convert=int),
               linking.restore("level", vocabulary.LEVELS, what="rows"), linking.restore("metric", list(METRICS))]
    shown = linking.from_address("methods")  # comma-separated; absent when every method is shown
    if shown is not None and shown.split(",") and set(shown.split(",")) <= set(methods):
        st.session_state["methods"] = shown.split(",")
    elif shown is not None:
        dropped.append(f"methods {shown[:80]!r}")
    bar = st.sidebar
    linking.warn(dropped)
    bar.subheader("Selection")
    bar.multiselect("Methods", methods, key="methods", help="the methods shown on the matrix and the "
                    "similarity pages")
    _settle("model", ids, next((i for i in ids if references[i] is not None), ids[0]))  # a derived model first
    bar.selectbox("Model", ids, key="model", help="the model the geometry pages show; click a matrix cell "
                  "or a model in the similarity map (or the lineage tree) to change it")
    _settle("reference", [NO_MODEL, *ids], NO_MODEL)
    bar.selectbox("Reference", [NO_MODEL, *ids], key="reference", format_func=lambda m: m or "(each model's base)",
                  help="what every comparison pairs a model with (drop vs reference, relative mCE, presets, PIE): "
                  "by default each model's base, the model it was derived from; or one model for all")
    reference = st.session_state["reference"] or references[st.session_state["model"]]
    _settle("compare", [NO_MODEL, *ids], reference if reference and reference != st.session_state["model"]
            else NO_MODEL)
    bar.selectbox("Compare with", [NO_MODEL, *ids], key="compare", format_func=lambda m: m or "(none)",
                  help="a second model for the deltas on the Local geometry page")
    _settle("corruption", corruptions, layout.CLEAN)
    bar.selectbox("Corruption", corruptions, key="corruption")
    _settle("severity", severities, severities[-1] if len(severities) < 3 else severities[len(severities) // 2])
    bar.select_slider("Severity", severities, key="severity",
                      disabled=st.session_state["corruption"] == layout.CLEAN,
                      help="ignored for clean images (severity 0)")
    _settle("level", list(vocabulary.LEVELS), "group")
    bar.segmented_control("Rows", list(vocabulary.LEVELS), key="level", format_func=LEVEL_LABELS.get, required=True,
                          help="groups: models differing only in seed together, mean and "
                          "95 % interval across seeds; models: each model on its own row")
    _settle("metric", list(METRICS), "accuracy")
    bar.selectbox("Metric", list(METRICS), key="metric", format_func=lambda name: METRICS[name].label,
                  help=METRIC_HELP)
    state = st.session_state
    linking.remember({"methods": None if set(state["methods"]) == set(methods) else ",".join(state["methods"]),
                      "model": state["model"], "reference": state["reference"], "compare": state["compare"],
                      "corruption": state["corruption"],
                      "severity": None if state["corruption"] == layout.CLEAN else state["severity"],
                      "level": state.get("level"), "metric": state["metric"]})


def selection() -> Selection:
    """The shared selection (the sidebar draws it before any page runs)."""
    state = st.session_state
    corruption = state.get("corruption", layout.CLEAN)
    return Selection(methods=tuple(state.get("methods") or ()), model=state.get("model", ""),
                     compare=state.get("compare") or None, corruption=corruption,
                     severity=0 if corruption == layout.CLEAN else int(state.get("severity", 0)),
                     metric=state.get("metric", "accuracy"), level=state.get("level") or "group")
