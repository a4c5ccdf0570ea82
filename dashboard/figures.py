"""Charts built once per selection: a page asks for the Vega-Lite spec of a chart function of
dashboard.charts applied to the frames and values it draws (`spec`); the first request builds it (the Altair
chart, its to_dict and its data as Arrow, the cost profiled in issue 27), and every later rerun and every
other session asking the same gets that spec from a resource cache, without building or copying anything.

A spec is keyed by the chart function and a digest of its arguments' contents (every row of a frame, every
value), not by the objects: a page derives new frames on each run, with the same contents when the
selection has not changed. The spec is what st.altair_chart would send for the chart (Streamlit's own
conversion: no theme, the data as named Arrow datasets), so dashboard.linking.chart draws it with
st.vega_lite_chart and its named selection parameters select as before. It is built without Altair's
schema validation; tests validate each chart the pages draw (tests/dashboard/test_figures.py and the charts'
own tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

import altair as alt
import numpy as np
import polars as pl
import streamlit as st
from streamlit import dataframe_util

SPECS = 256  # specs kept (least recently used dropped): each holds its chart's data, small by design (charts/)

# Altair's theme and data transformer are process-wide settings: one conversion at a time switches them.
# Every chart of the app is converted here (no page calls st.altair_chart, which switches them under a
# lock of its own; tests/dashboard/test_figures.py checks it).
_ALTAIR_SETTINGS = threading.Lock()


def spec(function: Callable[..., alt.TopLevelMixin], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The Vega-Lite spec of `function(*args, **kwargs)`, a chart of dashboard.charts, built once per
    contents of its arguments (frames, arrays, strings, numbers, and lists, tuples and dicts of them) and
    shared by every session. The spec is shared: read it, never change it."""
    if not function.__module__.startswith("dashboard.charts.") or "<locals>" in function.__qualname__:
        raise ValueError(f"{function.__module__}.{function.__qualname__} is not a chart of dashboard.charts")
    return _built(key(function, args, kwargs), function, args, kwargs)


def key(function: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> str:
    """What determines a chart: the function (its name and its code, so an edited chart is rebuilt) and a
    digest of its arguments' contents."""
    digest = hashlib.blake2b(digest_size=20)
    _update(digest, args)
    _update(digest, dict(sorted(kwargs.items())))
    return f"{function.__module__}.{function.__qualname__}:{hash(function.__code__):x}:{digest.hexdigest()}"


# Leading underscores: Streamlit hashes only `chart_key` (the arguments it summarises can be large).
@st.cache_resource(show_spinner=False, max_entries=SPECS)
def _built(chart_key: str, _function: Callable[..., alt.TopLevelMixin], _args: tuple,
           _kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return vega_lite(_function(*_args, **_kwargs))


def with_selection(spec: Mapping[str, Any], name: str, value: list[dict[str, Any]] | None) -> dict[str, Any]:
    """`spec` whose selection parameter `name` starts at `value` (the marks drawn selected before any click;
    None: none), so a chart that outlines the current selection is built once, not once per selection: a
    new top level and parameter list around the shared rest of the spec."""
    if not any(param.get("name") == name for param in spec.get("params", ())):
        raise ValueError(f"the chart has no selection parameter {name!r}")
    return {**spec, "params": [_starting(param, value) if param.get("name") == name else param
                               for param in spec["params"]]}


def _starting(param: Mapping[str, Any], value: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A selection parameter with the initial `value`, placed where Altair places it (after `select`)."""
    items = [(key, item) for key, item in param.items() if key != "value"]
    at = next((i + 1 for i, (key, _) in enumerate(items) if key == "select"), len(items))
    return dict(items[:at] + ([("value", value)] if value else []) + items[at:])


def vega_lite(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """`chart` as st.altair_chart sends it (streamlit.elements.vega_charts): to_dict under the theme
    "none" (Altair's default theme sets sizes Streamlit sets itself), every data frame as a dataset of Arrow
    bytes named by their digest; without schema validation."""
    datasets: dict[str, bytes] = {}
    with _ALTAIR_SETTINGS:
        alt.data_transformers.register("prunescope_arrow", _to_arrow)
        theme = alt.theme.enable("none") if alt.theme.active == "default" else contextlib.nullcontext()
        with theme, alt.data_transformers.enable("prunescope_arrow", datasets=datasets):
            built = chart.to_dict(validate=False)
    built["datasets"] = {**built.get("datasets", {}), **datasets}
    return built


def _to_arrow(data: Any, datasets: dict[str, bytes]) -> dict[str, str]:
    """Altair data transformer: the frame as Arrow IPC bytes in `datasets`, referenced by a digest of them
    (the name Streamlit gives it)."""
    arrow = dataframe_util.convert_anything_to_arrow_bytes(data)
    name = hashlib.blake2b(arrow, digest_size=16).hexdigest()
    datasets[name] = arrow
    return {"name": name}


def _update(digest: Any, value: Any) -> None:
    """Add `value`'s type and contents to `digest`, unambiguously (every part tagged and sized)."""
    def part(tag: str, data: bytes) -> None:
        digest.update(f"{tag}:{len(data)}:".encode())
        digest.update(data)

    if isinstance(value, pl.DataFrame):
        part("frame", repr((value.height, list(value.schema.items()))).encode())
        part("rows", value.hash_rows(seed=0).to_numpy().tobytes() if value.width else b"")
    elif isinstance(value, pl.Series):
        part("series", repr((value.name, value.dtype, value.len())).encode())
        part("values", value.hash(seed=0).to_numpy().tobytes())
    elif isinstance(value, np.ndarray):
        part("array", repr((value.dtype.str, value.shape)).encode())
        part("values", np.ascontiguousarray(value).tobytes())
    elif value is None or isinstance(value, (str, int, float, bool, np.generic)):
        part(type(value).__name__, repr(value).encode())
    elif isinstance(value, (list, tuple)):
        part(type(value).__name__, str(len(value)).encode())
        for item in value:
            _update(digest, item)
    elif isinstance(value, Mapping):
        part("mapping", str(len(value)).encode())
        for name, item in value.items():  # in order: a chart may draw its entries in that order
            _update(digest, name)
            _update(digest, item)
    else:
        raise TypeError(f"a chart's spec is keyed by its arguments' contents; {type(value).__name__} has none here")
