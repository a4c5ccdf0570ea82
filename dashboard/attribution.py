"""The attribution panel of the Sample page: the one place the dashboard runs a model.

What the maps are, which models may be loaded and how they are loaded is compute's
(compute.attribution, compute.loading); one click calls compute.attribution.occlusion_maps once. This
module keeps what belongs to the page: the page draws a progress bar and a Cancel button (whose click
stops the run at the next chunk), a visitor runs one attribution at a time and the server at most
MAX_RUNNING (`one_attribution`), and results are kept per (store, checkpoint, sample, setting)
(`cached`), so asking again costs nothing. compute.attribution loads torch only when a map is computed,
so the page loads without it.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import streamlit as st

from compute import attribution
from dashboard.text import escape, public
from store.confine import resolve_allowed
from store.layout import StoreError

CACHED = 64  # results kept per server


class Busy(Exception):  # noqa: N818 (a state, not a fault: the page says "try again")
    """No attribution can start now: this visitor's other one runs, or the server's MAX_RUNNING do."""


_running = threading.BoundedSemaphore(attribution.MAX_RUNNING)
_visitors: set[str] = set()  # visitors with an attribution running now
_visitors_lock = threading.Lock()


@contextlib.contextmanager
def one_attribution(visitor: str) -> Iterator[None]:
    """Hold one of the server's MAX_RUNNING attribution slots for `visitor` (dashboard.guard.visitor: all
    tabs of one browser); Busy, at once, when this visitor already runs one or every slot is taken."""
    with _visitors_lock:
        if visitor in _visitors:
            raise Busy("your other attribution (in another tab) is still running; try again when it is done")
        if not _running.acquire(blocking=False):
            raise Busy(f"the server is computing {attribution.MAX_RUNNING} attributions for other visitors; try "
                       "again in a minute")
        _visitors.add(visitor)
    try:
        yield
    finally:
        with _visitors_lock:
            _visitors.discard(visitor)
            _running.release()


_results: OrderedDict[tuple, dict[str, Any]] = OrderedDict()  # most recently used last
_results_lock = threading.Lock()


def cached(key: tuple) -> dict[str, Any] | None:
    """The maps computed for `key` (see `_key`), or None."""
    with _results_lock:
        if key in _results:
            _results.move_to_end(key)
            return _results[key]
    return None


def _keep(key: tuple, maps: dict[str, Any]) -> None:
    with _results_lock:
        _results[key] = maps
        while len(_results) > CACHED:
            _results.popitem(last=False)


def panel(root: str, recorded: str | None, image: np.ndarray, label: int, setting: tuple[int, str, int],
          visitor: str, toggle: str, loader: str | None = None) -> dict[str, Any] | None:
    """Compute the maps on the page (compute.attribution.occlusion_maps of the model models.parquet records:
    `recorded`, its checkpoint or weights, and `loader`; `setting` = (sample_id, corruption, severity) of
    the image the model saw): a progress bar and a Cancel button (it turns the `toggle` off; the run stops
    at the next chunk) while it runs; the maps, or None after saying why there are none."""
    key = _key(root, recorded, setting, loader)
    if (found := cached(key)) is not None:
        return found
    bar = st.progress(0.0, text="running the model on the occluded copies...")
    st.button("Cancel", key=f"{toggle}_cancel", on_click=lambda: st.session_state.update({toggle: False}),
              help="stops the attribution at its next chunk of occluded copies")
    try:
        with one_attribution(visitor):
            maps = attribution.occlusion_maps(root, recorded, image, label, loader=loader,
                                              progress=lambda done, total: bar.progress(
                                                  done / total, text=f"{done} of {total} occluded copies"))
    except (Busy, StoreError) as error:
        bar.empty()
        st.warning(escape(public(str(error))))  # store text (model ids) as written, no server path
        return None
    _keep(key, maps)
    return maps


def _key(root: str, recorded: str | None, setting: tuple[int, str, int], loader: str | None = None) -> tuple:
    """What a result is kept by: the store, the model's file (and its version), how it is loaded and the
    sample's setting (the image is the one the model saw in that setting, so the key stands for it)."""
    try:
        mtime = resolve_allowed(root, recorded).stat().st_mtime if recorded else None
    except (StoreError, OSError):
        mtime = None
    return (root, recorded, mtime, loader, *setting)
