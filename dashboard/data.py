"""The open store's data for the pages: its DuckDB catalog (opened once per store version, which a rebuilt
derived file changes, and shared by every session), named query results cached per store version, and,
when a page cannot read the store, an explanation that names the damaged files instead of a traceback.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.hosting import hosting, store_label, store_path
from dashboard.text import code, escape, public
from store import layout, vocabulary
from store.catalog import Catalog, QueryError
from store.layout import StoreError
from store.verify import validated_manifest, verify


def store_version(path: str | Path) -> tuple[int, ...]:
    """Changes whenever models, layer rows, partitions or embeddings are added, or a derived file is rebuilt (`compute
    index` rewrites its record, store.derived_record), so the catalog and cached results refresh. A few
    stats per page view: cheap."""
    root = Path(path)
    watched = (root / layout.MODELS, root / layout.LAYERS, root / layout.COMPLETE, root / layout.EMBEDDINGS,
               *(root / layout.EMBEDDINGS).glob("*.parquet"), root / layout.INDEX,
               *sorted((root / layout.INDEX).glob("*.json")))
    return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in watched)


@st.cache_resource(show_spinner=False, max_entries=4)
def _catalog(path: str, version: tuple[int, ...], reference: str | None = None) -> Catalog:
    manifest = validated_manifest(path, images=False)  # values bounded by the files before any page uses them
    return Catalog(path, reference=reference, manifest=manifest)  # parsed once


def cached_catalog(path: str, reference: str | None = None) -> Catalog:
    """The cached catalog of `path`, comparing every model with `reference` (None: each with its base);
    StoreError when it is not a store, its manifest is damaged or it has no model `reference`."""
    return _catalog(str(Path(path).resolve()), store_version(path), reference)


# What a page says where a comparison needs a reference model and the store has none: the operator's
# commands, never an instruction to a visitor of a hosted store.
NO_REFERENCE = ("No model of this store has a reference to compare with (a base it was derived from). Pick a "
                "**Reference** in the sidebar; the store's operator records bases with `python -m compute extract "
                "... --base MODEL_ID` (or `base` in a models file, `--models FILE.toml`).")


def has_reference(catalog: Catalog) -> bool:
    """Whether any model of the open store is compared with another (its base, or the chosen reference)."""
    return not catalog.query("SELECT 1 FROM models WHERE reference_model_id IS NOT NULL LIMIT 1",
                             name="has_reference").is_empty()


def open_catalog() -> Catalog:
    """The open store's catalog; otherwise tell the user what is wrong and how to fix it, and stop the page."""
    path = store_path()
    if hosting().stores is not None and not hosting().allow_any and not hosting().names():
        st.warning("No store is served here yet (the operator's store root holds none).")
        st.stop()
    try:
        is_dir = Path(path).is_dir()
    except (OSError, ValueError) as error:  # a typed path too long for the file system, or holding a NUL
        reason = error.strerror if isinstance(error, OSError) else str(error)
        st.warning(f"The directory typed in the sidebar ({len(path)} characters) is not a usable path: {reason}. "
                   "Type the directory of a store.")
        st.stop()
    if not is_dir:
        if hosting().allow_any:
            st.warning(f"No store at {code(path)}. Build the demo with `make demo` (or "
                       f"{code(f'python -m compute demo --out {path}')}), or pick another directory in the sidebar.")
        else:
            st.warning(f"No store at {code(store_label())} on this server. Build the demo with `make demo` "
                       "(or `python -m compute demo --out DIR`).")
        st.stop()
    try:
        catalog = cached_catalog(path, st.session_state.get("reference") or None)
    except StoreError as error:
        st.error(escape(public(str(error))))
        st.stop()
    except Exception as error:  # a file the catalog reads on opening is damaged: name it
        failed(error, vocabulary.CATALOG_VIEWS)
        st.stop()
    if catalog.serving_hint and st.session_state.get(SERVING_HINT_SHOWN) != str(catalog.root):
        st.session_state[SERVING_HINT_SHOWN] = str(catalog.root)  # once per session and store
        st.toast(SERVING_HINT.format(command=code(f"python -m compute index --store {store_label()}")),
                 icon=":material/speed:")
    return catalog


# Said once per session (and store) when the store has no fresh serving copy (store.serving).
SERVING_HINT = ("This store has no fresh serving copy, so pages read its Parquet partitions: the same answers, "
                "more slowly on a large study. The store's operator builds it with {command}.")
SERVING_HINT_SHOWN = "_serving_hint_shown"


# A resource cache: every hit returns the same frame (Polars frames are immutable; pages derive new ones),
# where st.cache_data would unpickle a copy of it on every page view (profiled: issue 27).
@st.cache_resource(show_spinner=False, max_entries=256)
def _query(module: str, name: str, path: str, version: tuple[int, ...], reference: str | None, args: tuple,
           kwargs: tuple) -> Any:
    function = getattr(importlib.import_module(module), name)
    return function(_catalog(path, version, reference), *args, **dict(kwargs))


def query(function: Callable[..., Any], catalog: Catalog, *args: Any, **kwargs: Any) -> Any:
    """`function(catalog, *args, **kwargs)` for a named query of the analysis package, cached per store
    version, so revisiting a page or another session asking the same is instant."""
    if not function.__module__.startswith("analysis."):
        raise ValueError(f"{function.__module__}.{function.__name__} is not a named store query")
    return _query(function.__module__, function.__name__, str(catalog.root), store_version(catalog.root),
                  catalog.reference, args, tuple(sorted(kwargs.items())))


# -- damaged stores ---------------------------------------------------------------------------------------

def problems(views: Sequence[str]) -> list[Any]:
    """What is wrong with the open store's files behind `views` (store.verify, headers only: cheap enough
    to run when a page fails; it never raises). The one place the dashboard calls verify."""
    return verify(Path(store_path()), [view for view in views if view in vocabulary.VIEWS], deep=False)


def failed(error: BaseException, views: Sequence[str]) -> None:
    """Explain a page that could not read the store: the damaged files it needs (`views`, a page's
    pages.Page.reads) and what is wrong with each (from verify), or the error itself; never a traceback
    (that goes to the server's log)."""
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
            # the entry itself, not what it points to: a file swapped for a link is named, not the store
            place = Path(where).parent.resolve() / Path(where).name if where else None
            name = str(place.relative_to(root)) if place and place.is_relative_to(root) and place != root \
                else store_label()
            lines.append(f"- {code(name)}: {escape(public(getattr(problem, 'message', str(problem))))}")
        st.error("This page needs files of the store that are damaged:\n\n" + "\n".join(lines))
    else:
        st.error(f"This page could not read the store: {escape(public(f'{type(error).__name__}: {error}'))}")
