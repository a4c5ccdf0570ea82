"""Evaluation matrix: accuracy of every model under every corruption and severity."""

import streamlit as st

from dashboard import charts, state

st.title("Evaluation matrix")
catalog = state.open_catalog()
if catalog is not None:
    matrix = state.accuracy_matrix(catalog)
    if matrix.is_empty():
        st.info("No predictions in this store yet: run `python -m compute extract` or `make demo`.")
    else:
        event = st.altair_chart(charts.accuracy_heatmap(matrix, catalog.manifest["corruptions"]), width="stretch", on_select="rerun", key="matrix")
        points = (event.get("selection", {}) or {}).get("cell") if isinstance(event, dict) else None
        if points:
            st.session_state["selected_cell"] = points[0]
        selected = st.session_state.get("selected_cell")
        if selected:
            st.caption(f"Selected: model `{selected['model_id']}`, {selected['corruption']} "
                       f"severity {selected['severity']}")
