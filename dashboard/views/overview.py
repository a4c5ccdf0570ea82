"""Overview: the study (dataset, models, methods, sparsities) and accuracy vs sparsity per method."""

import streamlit as st

from dashboard import charts, state
from store import analytics, queries

st.title("Overview")
catalog = state.open_catalog()
manifest = catalog.manifest
st.caption(f"Store {state.code(state.store_label())} · dataset **{state.code(manifest['dataset'])}** · {manifest['num_samples']} test "
           f"samples · {manifest['num_classes']} classes · {len(manifest['corruptions'])} corruptions at "
           f"severities {', '.join(map(str, manifest['severities']))}")
models = state.query(queries.models, catalog)
if models.is_empty():
    st.info("This store has no models yet. Add some with `python -m compute extract --store "
            f"{state.store_label()} --checkpoints ...`.")
    st.stop()
summary = state.query(analytics.model_summary, catalog)
columns = st.columns(4)
columns[0].metric("models", models.height)
columns[1].metric("methods", models["method"].n_unique())
columns[2].metric("best clean accuracy", f"{summary['clean_accuracy'].max():.3f}")
columns[3].metric("best corruption accuracy", f"{summary['corruption_accuracy'].max() or 0:.3f}")
state.chart(charts.accuracy_vs_sparsity(summary), key="overview_chart")
st.caption("Click a point to select that model on every page. Corruption accuracy is the mean over every "
           "corruption and severity in the store; mCE is relative to each model's dense model.")
table = models.drop("hparams", "checkpoint", "clean_accuracy").join(
    summary.select("model_id", "clean_accuracy", "corruption_accuracy", "corruption_drop_vs_dense", "mce",
                   "relative_mce"), on="model_id", how="left")
st.dataframe(table, hide_index=True)
state.downloads(table, "models")
