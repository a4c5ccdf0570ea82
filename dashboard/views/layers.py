"""Layers: what each method pruned, layer by layer (layers.parquet): a layers x models heat map of sparsity or
of output channels kept, and the selected model's profile beside its reference's."""

import polars as pl
import streamlit as st

from analysis import layers
from dashboard import data, figures, hosting, linking, sidebar
from dashboard.charts.layers import layer_heatmap, layer_pair
from dashboard.text import code, downloads
from store import layout

st.title("Layers")
catalog = data.open_catalog()
if not catalog.has_layers:
    st.info(f"This store has no per-layer record ({code(layout.LAYERS)}): it was written before prunescope "
            "recorded what pruning left of each layer. The store's operator adds it with "
            f"{code(f'python -m compute index --store {hosting.store_label()}')}, which loads every model whose "
            "checkpoint is still there (and names those it cannot load).")
    st.stop()
selection = sidebar.selection()
measure = st.segmented_control("Show", list(layers.MEASURES), default="sparsity", key="layers_measure",
                               format_func=layers.MEASURES.get, required=True, persist_state="session")
profile = data.query(layers.layer_profile, catalog)
shown = profile.filter(pl.col("method").is_in(list(selection.methods)))
if shown.is_empty():
    st.info("No model of the methods picked in the sidebar has layer rows; pick more methods, or record the "
            f"missing ones with {code(f'python -m compute index --store {hosting.store_label()}')}.")
    st.stop()
linking.chart(figures.spec(layer_heatmap, shown, measure, selection.model), key="layers_chart")
st.caption("One column per model, one row per convolution or linear layer (the classifier last), in the order "
           "the network applies them. Sparsity is the fraction of the layer's weights that are zero; channels "
           "kept is the layer's output channels that still hold a non-zero weight over its reference's (the "
           "model's base, or the sidebar's **Reference**): channel pruning removes them, masks rarely empty one. "
           "Click a column to select that model on every page.")

st.subheader("The selected model beside its reference")
reference = profile.filter(pl.col("model_id") == selection.model)["reference_model_id"].drop_nulls()
other = selection.compare or (reference[0] if len(reference) else None)
pair = profile.filter(pl.col("model_id").is_in([selection.model, other or selection.model]))
if pair.filter(pl.col("model_id") == selection.model).is_empty():
    st.info(f"The selected model {code(selection.model)} has no layer rows (its checkpoint could not be loaded "
            "when they were recorded); pick another model in the sidebar.")
else:
    missing = other is not None and pair.filter(pl.col("model_id") == other).is_empty()
    linking.chart(figures.spec(layer_pair, pair, measure, selection.model, None if missing else other), stretch=False)
    if other is None:
        st.caption("This model has no reference to draw beside it; pick one under **Compare with** in the sidebar.")
    elif missing:
        st.caption(f"{code(other)} has no layer rows to draw beside it.")
    else:
        st.caption(f"Left the selected model, right {code(other)} (the sidebar's **Compare with**, by default the "
                   "model's reference), on the same layers and scale.")
    st.dataframe(pair, hide_index=True)
downloads(profile, "layers")
