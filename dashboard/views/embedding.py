"""Embedding: the precomputed 2-D projection of per-sample geometry, coloured by class, correctness or model."""

import polars as pl
import streamlit as st

from analysis import embeddings
from dashboard import classes, data, figures, hosting, linking, sidebar
from dashboard.charts.common import MAX_MARKS, OTHER_CLASSES
from dashboard.charts.embedding import embedding_scatter
from dashboard.text import code, downloads

COLOURS = {"class": "label_name", "correctness": "correct", "model": "model_id"}

st.title("Embedding")
catalog = data.open_catalog()
selection = sidebar.selection()
points = data.query(embeddings.sample_embedding, catalog)
if points.is_empty():
    st.info("No per-sample embedding in this store yet: this page shows each sample's geometry projected to "
            "2-D once the store's operator computes it (`python -m compute embed --store "
            f"{hosting.store_label()}`).")
    st.stop()
colour = st.segmented_control("Colour by", list(COLOURS), default="class", key="embedding_colour",
                              persist_state="session", required=True)
setting = points.filter((pl.col("corruption") == selection.corruption) & (pl.col("severity") == selection.severity))
if setting.is_empty():
    available = points.unique(["corruption", "severity"]).sort("corruption", "severity")
    st.info(f"The embedding covers other settings than {selection.setting}: "
            + ", ".join(f"{c} s{s}" for c, s in available.select("corruption", "severity").iter_rows())
            + ". Pick one of them in the sidebar.")
    st.stop()
shown = setting if colour == "model" else setting.filter(pl.col("model_id") == selection.model)
if shown.is_empty():
    shown = setting
    st.caption(f"{code(selection.model)} is not in the embedding; showing the models it has (`python -m compute "
               "embed --sample-models ...` adds others).")
if shown.height > MAX_MARKS:
    st.caption(f"Showing {MAX_MARKS:,} of {shown.height:,} points (a fixed random subset).")
    shown = shown.sample(MAX_MARKS, seed=0)
field = COLOURS[colour]
if colour == "class" and (labels := classes.class_filter(catalog)) is not None:  # too many classes for colours
    names = [catalog.manifest["class_names"][c] for c in labels]
    shown = shown.with_columns(pl.when(pl.col("label").is_in(labels)).then(pl.col("label_name"))
                               .otherwise(pl.lit(OTHER_CLASSES)).alias("class"))
    field = "class"
    st.caption(f"Coloured: the {len(names)} classes picked above; grey: the other "
               f"{len(catalog.manifest['class_names']) - len(names)} (hover a point for its class).")
models = shown["model_id"].unique(maintain_order=True)
whose = models[0] if len(models) == 1 else f"{len(models)} models"
linking.chart(figures.spec(embedding_scatter, shown, field, f"Samples of {whose} on {selection.setting}"),
              key="embedding_chart")
st.caption("Click a point to select the sample and its model.")
linking.sample_link()
downloads(shown, "embedding")
