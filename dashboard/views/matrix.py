"""Evaluation matrix: every model under every corruption and severity, in the metric of the sidebar."""

import polars as pl
import streamlit as st

from dashboard import charts, state
from store import analytics

st.title("Evaluation matrix")
catalog = state.open_catalog()
selection = state.selection()
manifest = catalog.manifest
shown = st.select_slider("Severity shown", ["all", *manifest["severities"]], value="all", key="matrix_severity",
                         persist_state="session", help="one severity, or every severity side by side")

metric = selection.metric
legend = state.METRICS[metric]
if metric == "relative_ce":
    cells = state.query(analytics.corruption_errors, catalog)
    value, scale = "relative_ce", {"diverging_at": 1.0}
    st.caption("Relative corruption error: the model's error increase over its clean error, summed over "
               "severities, divided by its dense model's (1 = as robust as dense, above 1 = more brittle). "
               "One value per corruption, so the severity control does not apply.")
elif metric in ("accuracy", "drop_vs_dense"):
    cells = state.query(analytics.accuracy_matrix, catalog)
    value = metric
    scale = {"domain": (0, 1)} if metric == "accuracy" else {"diverging_at": 0.0}
else:
    cells = state.query(analytics.metric_matrix, catalog, metric)
    value, scale = "value", {}
if cells.is_empty():
    st.info("No predictions in this store yet: run `python -m compute extract` or `make demo`.")
    st.stop()

cells = cells.filter(pl.col("method").is_in(list(selection.methods)))
if cells.is_empty():
    st.info("No method is chosen: pick some under **Methods** in the sidebar.")
    st.stop()
if shown != "all" and "severity" in cells.columns:
    cells = cells.filter(pl.col("severity").is_in([0, int(shown)]))
severities = manifest["severities"] if shown == "all" else [int(shown)]
columns = (manifest["corruptions"] if metric == "relative_ce"
           else charts.setting_order(manifest["corruptions"], severities))
selected = {"model_id": selection.model, "corruption": selection.corruption, "severity": selection.severity}
state.chart(charts.evaluation_matrix(cells, value, legend, columns, selected=selected, **scale), key="matrix_chart",
            stretch=False)
st.caption(f"Selected: model {state.code(selection.model)}, {selection.setting}. Click a cell to select it on every "
           "page, then open Local geometry or Sample.")
left, right, _ = st.columns([1, 1, 1])
left.page_link("views/local.py", label="Local geometry of the selection", icon=":material/scatter_plot:")
right.page_link("views/global.py", label="Global geometry of the selection", icon=":material/timeline:")
with st.expander("Table"):
    st.dataframe(cells, hide_index=True)
    state.downloads(cells, f"matrix-{metric}")
