"""One running filter per visitor: a visitor with any number of tabs of an expensive filter holds the
server's cores at most a third of the time, so other visitors' pages stay fast (bench.load --interference).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import streamlit as st

from store.catalog import QueryTimeout

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
