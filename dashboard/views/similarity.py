"""Geometric similarity: models placed by their per-sample geometry (UMAP + minimum spanning tree),
beside method agreement and corruption redundancy in clustered order."""

import polars as pl
import streamlit as st

from analysis import agreement, embeddings, queries, uncertainty
from dashboard import data, figures, hosting, linking, sidebar
from dashboard.charts.similarity import clustered_heatmap, model_map
from dashboard.text import downloads

st.title("Geometric similarity")
catalog = data.open_catalog()
selection = sidebar.selection()
models = data.query(queries.models, catalog)
shown = models.filter(pl.col("method").is_in(list(selection.methods)))["model_id"].to_list()

embedding = data.query(embeddings.model_embedding, catalog)
if embedding.is_empty():
    st.info("No model embedding in this store yet: this page shows where each model lies (UMAP of every "
            "model's per-sample angle, feature norm and margin, plus the minimum spanning tree) once the store's "
            f"operator computes it (`python -m compute embed --store {hosting.store_label()}`).")
else:
    edges = data.query(embeddings.model_tree, catalog)
    linking.chart(figures.spec(model_map, embedding.filter(pl.col("model_id").is_in(shown)),
                               edges.filter(pl.col("source").is_in(shown) & pl.col("target").is_in(shown))),
                  key="similarity_map")
    st.caption("Close models treat the test samples alike (angle, length, margin). Click a model to select it.")

st.subheader("Model agreement")
pairs = data.query(agreement.model_agreement, catalog, selection.corruption, selection.severity)
pairs = pairs.filter(pl.col("model_a").is_in(shown) & pl.col("model_b").is_in(shown))
if pairs.is_empty():
    st.info("Model agreement needs at least two models with predictions in the selected setting.")
elif selection.level == "group":
    pairs = uncertainty.group_pairs(pairs, data.query(uncertainty.groups, catalog), "kappa")
    matrix, order = agreement.square_matrix(pairs.select("group_a", "group_b", "kappa"), "kappa")
    chance = pairs.filter((pl.col("kappa_low") <= 0) & (pl.col("kappa_high") >= 0)).select("group_a", "group_b")
    linking.chart(figures.spec(
        clustered_heatmap, matrix, order, legend="Cohen's kappa (mean over seeds)", items="group",
        row_field="group_id", column_field="group_b",
        title=f"Groups that get the same samples right ({selection.setting})",
        chance=chance.rows()), key="agreement_chart", stretch=False)
    st.caption("Per pair of groups (models differing only in seed), the mean kappa over their models' pairs "
               "with the 95 % t interval across those pairs (one pair: its bootstrap interval over the samples). "
               "The diagonal is the agreement between the seeds of one group (1 for a group of one seed). "
               "Faded with a dot: the interval holds 0, so the pair agrees no more than its accuracies alone "
               "would make it. Switch **Rows** in the sidebar to individual models.")
    st.dataframe(pairs, hide_index=True)
    downloads(pairs, "group-agreement")
else:
    matrix, order = agreement.square_matrix(pairs, "kappa")
    chance = pairs.filter(~pl.col("beyond_chance") & pl.col("kappa").is_not_null()).select("model_a", "model_b")
    linking.chart(figures.spec(
        clustered_heatmap, matrix, order, legend="Cohen's kappa", items="model", row_field="model_id",
        column_field="model_b", title=f"Models that get the same samples right ({selection.setting})",
        chance=chance.rows()),
        key="agreement_chart", stretch=False)
    st.caption("Kappa 1: the two models are right and wrong on the same samples; 0: no more than chance, the "
               "agreement expected from their two accuracies. Faded with a dot: kappa's 95 % bootstrap interval "
               "over the samples holds 0 (not different from chance). Click a cell to select the pair.")
    st.dataframe(pairs, hide_index=True)
    downloads(pairs, "model-agreement")

st.subheader("Corruption redundancy")
per_sample = st.toggle("per-sample kappa (slower on large studies)", key="redundancy_per_sample",
                       persist_state="session",
                       help="off: correlation across models of the accuracy drops; on: Cohen's kappa of "
                            "correctness, pairing each model's predictions on the same sample")
severity = selection.severity or None
if per_sample:
    pairs = data.query(agreement.corruption_redundancy, catalog, severity)
    value, legend = "kappa", "Cohen's kappa"
else:
    pairs = data.query(agreement.corruption_drop_correlation, catalog, severity)
    value, legend = "drop_correlation", "drop correlation"
if pairs.is_empty():
    st.info("Corruption redundancy needs at least two corruptions and two models.")
else:
    matrix, order = agreement.square_matrix(pairs, value)
    where = f"severity {severity}" if severity else "mean over severities"
    linking.chart(figures.spec(
        clustered_heatmap, matrix, order, legend=legend, items="corruption", row_field="corruption",
        column_field="corruption_b", title=f"Corruptions that affect the models alike ({where})"),
        key="redundancy_chart", stretch=False)
    st.caption("Blocks of near-1 values are redundant corruptions. Click a cell to select its row's corruption.")
    downloads(pairs, "corruption-redundancy")
