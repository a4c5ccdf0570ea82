"""How the shared selection changes from the pages rather than the sidebar: a click on a chart mark, a
link to the sample last clicked, and the address: every page writes its selection into the URL
(`?store=beta&model=m02&corruption=fog&severity=3&preset=robust`, `remember`), so a reload or a shared
link opens the same view (`restore`), whichever page it was copied from.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import streamlit as st

from dashboard.pages import PAGES
from store import layout

# A chart mark's field -> the selection key (a sidebar widget's, see dashboard.sidebar) it sets.
_FIELD_KEYS = {"model_id": "model", "model_b": "compare", "corruption": "corruption", "severity": "severity",
               "sample_id": "sample"}


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


def chart(spec: Mapping[str, Any], key: str | None = None, stretch: bool = True) -> None:
    """Draw a chart's Vega-Lite spec, built once per selection by dashboard.figures.spec (full width, or as
    wide as it says with stretch=False); with a key, a click on one of its marks updates the selection."""
    width = "stretch" if stretch else "content"
    if key is None:
        st.vega_lite_chart(spec=spec, width=width)
    else:
        st.vega_lite_chart(spec=spec, width=width, key=key, on_select=functools.partial(select_from_chart, key))


def sample_link() -> None:
    """A link to the Sample page for the sample last clicked in a chart, once there is one."""
    sample = st.session_state.get("sample")
    if sample is not None:
        page = PAGES["sample"]
        st.page_link(page.script, label=f"Open sample #{sample}", icon=page.icon, query_params={"sample": str(sample)})


def int_param(name: str) -> int | None:
    """An integer query parameter of the address (`?sample=12`); None when absent or not a plain decimal
    number of at most 12 digits (any other value is ignored, never an error)."""
    value = st.query_params.get(name)
    return int(value) if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value) else None


# -- the address: the selection as URL parameters --------------------------------------------------------

_IN_ADDRESS = "address_values"  # session key: parameter -> the value last read from or written to the URL


def from_address(parameter: str) -> str | None:
    """`?parameter=`'s value when this session has neither read nor written it yet (a typed address, a
    reload, a shared link), else None; it counts as read from now on."""
    value = st.query_params.get(parameter)
    seen = st.session_state.setdefault(_IN_ADDRESS, {})
    if value is None or value == seen.get(parameter):
        return None
    seen[parameter] = value
    return value


def restore(parameter: str, allowed: Collection[str], *, key: str | None = None, convert: Callable[[str], Any] = str,
            what: str | None = None) -> str | None:
    """Apply `?parameter=value` to the selection (`st.session_state[key or parameter]`) when the address holds
    a value this session has not read or written yet: a typed address, a reload, a shared link. A value
    not in `allowed` is dropped (the selection keeps its default) and returned described, for `warn`."""
    value = from_address(parameter)
    if value is None:
        return None
    if value in allowed:
        st.session_state[key or parameter] = convert(value)
        return None
    return f"{what or parameter} {value[:80]!r}"


def remember(values: Mapping[str, Any]) -> None:
    """Write the selection into the address: parameter -> value (None or "" removes the parameter)."""
    seen = st.session_state.setdefault(_IN_ADDRESS, {})
    for parameter, value in values.items():
        if value is None or value == "":
            if parameter in st.query_params:
                del st.query_params[parameter]
            seen.pop(parameter, None)
        elif st.query_params.get(parameter) != str(value):
            st.query_params[parameter] = seen[parameter] = str(value)
        else:
            seen[parameter] = str(value)


def warn(problems: list[str | None], where: Any = None) -> None:
    """One message for every value of the address that was dropped (restore's descriptions)."""
    named = [problem for problem in problems if problem]
    if named:
        (where or st.sidebar).warning(f"The address names {', '.join(named)}, which this store does not have; "
                                      "showing the default instead.")
