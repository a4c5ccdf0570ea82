"""What every page shares: the open store, its cached catalog and query results, and the selection.

The selection (methods, model, comparison model, corruption, severity, metric) lives in
`st.session_state` under the keys of the sidebar widgets, so every page reads the same values and a click
on a chart mark (`select_from_chart`, an `on_select` callback) changes them everywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from analysis import queries
from dashboard.metrics import METRICS
from dashboard.pages import PAGES
from store import layout
from store.catalog import Catalog, QueryError, QueryTimeout
from store.layout import StoreError
from store.verify import VIEWS as VERIFIED
from store.verify import validated_manifest, verify

ENV = "PRUNESCOPE_STORE"

NO_MODEL = ""  # the comparison selectbox's "none" option
# Rows of the study pages: replicate groups (seeds of one arch, method and sparsity) or single models.
LEVELS: dict[str, str] = {"group": "groups (mean over seeds)", "model": "individual models"}
METRIC_HELP = "what the evaluation matrix shows:\n\n" + "\n".join(
    f"- {metric.label}: {metric.meaning}" for metric in METRICS.values())

# A chart mark's field -> the selection key it sets (see select_from_chart).
_FIELD_KEYS = {"model_id": "model", "model_b": "compare", "corruption": "corruption", "severity": "severity",
               "sample_id": "sample"}


ENV_STORES = "PRUNESCOPE_STORES"
ENV_ANY = "PRUNESCOPE_ALLOW_ANY_STORE"
DEFAULT_STORE = "data/demo"


@dataclass(frozen=True)
class Hosting:
    """What the operator serves: one store (`--store DIR`), every store directly under a root (`--stores
    ROOT`, picked by name), or, for local use only, any directory the visitor types (`--allow-any-store`).
    A visitor can never name a path in the first two modes."""

    store: str | None = None
    stores: str | None = None
    allow_any: bool = False

    def names(self) -> list[str]:
        """The stores under the root: real directories (not symlinks) holding a manifest.json file."""
        root = Path(self.stores or "")
        try:
            entries = sorted(root.iterdir()) if self.stores else []
        except OSError:
            return []
        return [entry.name for entry in entries
                if not entry.is_symlink() and entry.is_dir() and (entry / layout.MANIFEST).is_file()
                and not (entry / layout.MANIFEST).is_symlink()]


def hosting() -> Hosting:
    """The mode the operator chose: flags after `--` on the streamlit command line, else $PRUNESCOPE_STORES
    / $PRUNESCOPE_STORE (and $PRUNESCOPE_ALLOW_ANY_STORE=1), else the one store data/demo."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # `--sto` is not `--store`
    parser.add_argument("--store")
    parser.add_argument("--stores")
    parser.add_argument("--allow-any-store", action="store_true")
    known, _ = parser.parse_known_args(sys.argv[1:])
    allow_any = known.allow_any_store or os.environ.get(ENV_ANY, "") in ("1", "true", "yes")
    if known.stores or known.store:
        return Hosting(store=known.store, stores=None if known.store else known.stores, allow_any=allow_any)
    if os.environ.get(ENV_STORES) and not os.environ.get(ENV):
        return Hosting(stores=os.environ[ENV_STORES], allow_any=allow_any)
    return Hosting(store=os.environ.get(ENV) or DEFAULT_STORE, allow_any=allow_any)


def default_store() -> str:
    """The store a session starts on: the operator's one store, else the first store under the root."""
    mode = hosting()
    if mode.stores is not None:
        names = mode.names()
        return str(Path(mode.stores) / names[0]) if names else mode.stores
    return mode.store or DEFAULT_STORE


def store_path() -> str:
    """The directory of the store this session shows: the operator's store, the store picked by name under
    the root, or (with --allow-any-store) the directory typed in the sidebar."""
    mode = hosting()
    if mode.allow_any:
        if "store" not in st.session_state:
            st.session_state["store"] = default_store()
        return st.session_state["store"]
    if mode.stores is not None:
        names = mode.names()
        name = st.session_state.get("store_name")
        return str(Path(mode.stores) / name) if name in names else default_store()
    return default_store()


def store_label() -> str:
    """The open store as a visitor may see it: its name when hosted (no server path), the path otherwise."""
    return store_path() if hosting().allow_any else Path(store_path()).name


def public(message: str) -> str:
    """A message with the open store's server path replaced by its name (hosting modes)."""
    if hosting().allow_any:
        return message
    path = store_path()
    for prefix in sorted({str(Path(path).resolve()), str(Path(path).absolute())}, key=len, reverse=True):
        message = message.replace(prefix, store_label())
    return message


def code(value: Any) -> str:
    """A store or visitor string as Markdown inline code: shown as typed, never as a link, image, HTML or
    formatting (a fence longer than any run of backticks inside; line breaks become spaces)."""
    text = " ".join(str(value).splitlines()) or " "
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def store_version(path: str | Path) -> tuple[float, ...]:
    """Changes whenever models, partitions or embeddings are added, so cached results refresh."""
    root = Path(path)
    watched = (root / layout.MODELS, root / layout.COMPLETE, root / layout.EMBEDDINGS,
               *(root / layout.EMBEDDINGS).glob("*.parquet"))
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in watched)


@st.cache_resource(show_spinner=False, max_entries=4)
def _catalog(path: str, version: tuple[float, ...]) -> Catalog:
    validated_manifest(path, images=False)  # values bounded by the files before any page uses them
    return Catalog(path)


def _open(path: str) -> Catalog:
    """The cached catalog of `path` (StoreError when it is not a store or its manifest is damaged)."""
    return _catalog(str(Path(path).resolve()), store_version(path))


def open_catalog() -> Catalog:
    """The open store's catalog; otherwise tell the user what is wrong and how to fix it, and stop the page."""
    path = store_path()
    if hosting().stores is not None and not hosting().allow_any and not hosting().names():
        st.warning("No store is served here yet (the operator's store root holds none).")
        st.stop()
    if not Path(path).is_dir():
        if hosting().allow_any:
            st.warning(f"No store at `{path}`. Build the demo with `make demo` (or "
                       f"`python -m compute demo --out {path}`), or pick another directory in the sidebar.")
        else:
            st.warning(f"No store at {code(store_label())} on this server. Build the demo with `make demo` "
                       "(or `python -m compute demo --out DIR`).")
        st.stop()
    try:
        return _open(path)
    except StoreError as error:
        st.error(escape(public(str(error))))
        st.stop()
    except Exception as error:  # a file the catalog reads on opening is damaged: name it
        failed(error, VIEWS)
        st.stop()


# -- damaged stores ---------------------------------------------------------------------------------------

# Every view of the catalog: the files searched when the store cannot be opened or a page is unknown.
VIEWS = ("samples", "models", "predictions", "embeddings")


def problems(views: Sequence[str]) -> list[Any]:
    """What is wrong with the open store's files behind `views` (store.verify, headers only: cheap enough
    to run when a page fails; it never raises). The one place the dashboard calls verify."""
    return verify(Path(store_path()), [view for view in views if view in VERIFIED], deep=False)


def failed(error: BaseException, views: Sequence[str]) -> None:
    """Explain a page that could not read the store: the damaged files it needs (`views`, a page's
    pages.Page.reads) and what is wrong with each (from verify), or the error itself; never a traceback
    (that goes to the server's log)."""
    import logging

    logging.getLogger("prunescope").warning("page failed on %s", store_path(), exc_info=error)
    if isinstance(error, StoreError) and not isinstance(error, QueryError):  # a query's error: find the file
        st.error(escape(public(str(error))))
        return
    found = problems(views)
    if found:
        root = Path(store_path()).resolve()
        lines = []
        for problem in found:
            where = getattr(problem, "path", None)
            name = str(Path(where).resolve().relative_to(root)) if where and Path(where).resolve().is_relative_to(
                root) else store_label()
            lines.append(f"- {code(name)}: {escape(public(getattr(problem, 'message', str(problem))))}")
        st.error("This page needs files of the store that are damaged:\n\n" + "\n".join(lines))
    else:
        st.error(f"This page could not read the store: {escape(public(f'{type(error).__name__}: {error}'))}")


def int_param(name: str) -> int | None:
    """An integer query parameter of the address (`?sample=12`); None when absent or not a plain decimal
    number of at most 12 digits (any other value is ignored, never an error)."""
    value = st.query_params.get(name)
    return int(value) if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value) else None


def escape(text: str) -> str:
    """Text shown inside Markdown exactly as written: every punctuation mark that Markdown could read as
    formatting, a link or an image is backslash-escaped (and line breaks become spaces)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])", r"\\\1", " ".join(text.splitlines()))


@st.cache_data(show_spinner=False, max_entries=256)
def _query(module: str, name: str, path: str, version: tuple[float, ...], args: tuple, kwargs: tuple) -> Any:
    function = getattr(importlib.import_module(module), name)
    return function(_catalog(path, version), *args, **dict(kwargs))


def query(function: Callable[..., Any], catalog: Catalog, *args: Any, **kwargs: Any) -> Any:
    """`function(catalog, *args, **kwargs)` for a named query of the analysis package, cached per store
    version, so revisiting a page or another session asking the same is instant."""
    if not function.__module__.startswith("analysis."):
        raise ValueError(f"{function.__module__}.{function.__name__} is not a named store query")
    return _query(function.__module__, function.__name__, str(catalog.root), store_version(catalog.root),
                  args, tuple(sorted(kwargs.items())))


# -- one running filter per visitor -------------------------------------------------------------------------

FILTER_WAIT_S = 5.0  # as long as a filter may run (analysis.presets' timeout): a second one waits this long
_filtering: set[str] = set()  # visitors with a filter running now (bounded by the running filters)
_resting: dict[str, float] = {}  # visitor -> when its next filter may start (monotonic seconds)
REST_FACTOR = 2.0  # a visitor rests this many times as long as its last filter ran: it holds <= 1/3 of the time
_filter_done = threading.Condition()


def visitor() -> str:
    """Who is asking, across the tabs of one browser: its XSRF cookie (shared by the tabs), else its
    address. Several tabs of one visitor are one visitor here."""
    context = st.context
    return context.cookies.get("_streamlit_xsrf") or context.ip_address or "local"


@contextlib.contextmanager
def one_filter_at_a_time(wait: float = FILTER_WAIT_S) -> Iterator[None]:
    """Run the enclosed filter query when none of this visitor's other filters is running (any tab) and
    the visitor has rested REST_FACTOR times as long as its last filter ran, waiting up to `wait` seconds;
    QueryTimeout otherwise. So one visitor, with any number of tabs of an expensive filter, holds the
    server's cores at most a third of the time: the others' pages get less than 2x slower."""
    key = visitor()
    deadline = time.monotonic() + wait
    with _filter_done:
        while key in _filtering or _resting.get(key, 0.0) > time.monotonic():
            left = deadline - time.monotonic()
            if left <= 0:
                raise QueryTimeout("another filter of yours (in another tab) has just run or is still running; "
                                   "try again in a few seconds")
            _filter_done.wait(left if key in _filtering else min(left, _resting[key] - time.monotonic()))
        _filtering.add(key)
    started = time.monotonic()
    try:
        yield
    finally:
        with _filter_done:
            now = time.monotonic()
            _filtering.discard(key)
            for other in [k for k, until in _resting.items() if until <= now]:  # bounded: recent visitors only
                del _resting[other]
            _resting[key] = now + REST_FACTOR * (now - started)
            _filter_done.notify_all()


# -- the shared selection ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """What the user is looking at; every page reads it, chart clicks change it."""

    methods: tuple[str, ...]
    model: str
    compare: str | None
    corruption: str
    severity: int  # 0 for clean images
    metric: str  # a key of dashboard.metrics.METRICS
    level: str = "group"  # "group" or "model" (LEVELS)

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


def sidebar() -> None:
    """The store picker and the shared selection, drawn on every page."""
    store_picker()
    try:
        catalog = _open(store_path()) if Path(store_path()).is_dir() else None
        models = query(queries.models, catalog) if catalog is not None else None
    except Exception:  # noqa: BLE001 (a damaged store: the page explains it, see open_catalog)
        catalog = models = None
    if models is None or models.is_empty():
        return
    ids = models["model_id"].to_list()
    dense = dict(zip(ids, models["dense_model_id"].to_list(), strict=True))
    methods = list(dict.fromkeys(models["method"].to_list()))
    corruptions = [layout.CLEAN, *catalog.manifest["corruptions"]]
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
    _settle("corruption", corruptions, layout.CLEAN)
    bar.selectbox("Corruption", corruptions, key="corruption")
    _settle("severity", severities, severities[-1] if len(severities) < 3 else severities[len(severities) // 2])
    bar.select_slider("Severity", severities, key="severity",
                      disabled=st.session_state["corruption"] == layout.CLEAN,
                      help="ignored for clean images (severity 0)")
    bar.segmented_control("Rows", list(LEVELS), key="level", format_func=LEVELS.get, required=True,
                          default="group", help="groups: models differing only in seed together, mean and "
                          "95 % interval across seeds; models: each model on its own row")
    _settle("metric", list(METRICS), "accuracy")
    bar.selectbox("Metric", list(METRICS), key="metric", format_func=lambda name: METRICS[name].label,
                  help=METRIC_HELP)


def selection() -> Selection:
    """The shared selection (the sidebar draws it before any page runs)."""
    state = st.session_state
    corruption = state.get("corruption", layout.CLEAN)
    return Selection(methods=tuple(state.get("methods") or ()), model=state.get("model", ""),
                     compare=state.get("compare") or None, corruption=corruption,
                     severity=0 if corruption == layout.CLEAN else int(state.get("severity", 0)),
                     metric=state.get("metric", "accuracy"), level=state.get("level") or "group")


def apply_point(point: Mapping[str, Any]) -> None:
    """Copy a clicked mark's fields (model_id, corruption, severity, model_b, sample_id, ...) into the
    shared selection; a clean setting keeps the severity slider where it was."""
    values = {_FIELD_KEYS[field]: value for field, value in point.items() if field in _FIELD_KEYS}
    if values.get("corruption") == layout.CLEAN or values.get("severity") == 0:
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
        page = PAGES["sample"]
        st.page_link(page.script, label=f"Open sample #{sample}", icon=page.icon, query_params={"sample": str(sample)})


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


FIRST_CLASSES = 10  # classes a per-class view starts with on a study with too many to show at once
CLASS_COLUMNS = ("label", "pred", "pred_b", "dense_modal_pred", "pruned_modal_pred")  # class indices in tables


def largest_classes(catalog: Catalog, count: int = FIRST_CLASSES) -> list[str]:
    """The names of the `count` classes with the most test samples (ties: in class order)."""
    labels = query(queries.samples, catalog)["label"]
    sizes = labels.value_counts().sort(["count", "label"], descending=[True, False])
    return [catalog.manifest["class_names"][int(c)] for c in sizes["label"].head(count)]


def class_filter(catalog: Catalog) -> list[int] | None:
    """The classes a per-class view shows: all (None) for up to MAX_CLASS_PANELS classes, else the ones
    the user picks in a searchable picker (the ten largest classes to begin with)."""
    names = catalog.manifest["class_names"]
    if len(names) <= MAX_CLASS_PANELS:
        return None
    chosen = st.multiselect("Classes", names, default=largest_classes(catalog), key="classes",
                            persist_state="session", placeholder="type to search the classes",
                            help=f"this study has {len(names)} classes: type part of a name to find one; "
                                 f"the page starts with the {FIRST_CLASSES} largest")
    index = {name: c for c, name in enumerate(names)}
    return [index[name] for name in chosen]


def with_class_names(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """`frame` with a `<column>_name` column beside each class-index column (CLASS_COLUMNS) that lacks one,
    so tables name classes, not indices."""
    lookup = dict(enumerate(names))
    added = [pl.col(c).cast(pl.Int64).replace_strict(lookup, default=None, return_dtype=pl.String).alias(f"{c}_name")
             for c in CLASS_COLUMNS if c in frame.columns and f"{c}_name" not in frame.columns]
    if not added:
        return frame
    named = frame.with_columns(added)
    order: list[str] = []
    for column in frame.columns:  # each name right after its index
        order.append(column)
        if column in CLASS_COLUMNS and f"{column}_name" in named.columns and f"{column}_name" not in frame.columns:
            order.append(f"{column}_name")
    return named.select(order + [c for c in named.columns if c not in order])


def quoted(value: str) -> str:
    """A text value as a literal of the filter language (analysis.filters), for composing a filter."""
    return "'" + value.replace("'", "''") + "'"
