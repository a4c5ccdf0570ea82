"""Overview: the study (dataset, models, methods, sparsities) and accuracy vs sparsity per method."""

import polars as pl
import streamlit as st

from analysis import matrices, presets, queries, report, uncertainty
from dashboard import data, figures, hosting, linking, sidebar
from dashboard.charts.overview import (
    PLACED_BY_COST,
    PLACED_BY_SPARSITY,
    accuracy_vs_sparsity,
    group_accuracy_vs_sparsity,
    has_costs,
    lineage_tree,
    robustness_vs_cost,
    unplaced,
)
from dashboard.text import code, downloads, escape

st.title("Overview")
catalog = data.open_catalog()
manifest = catalog.manifest
st.caption(f"Store {code(hosting.store_label())} · dataset **{code(manifest['dataset'])}** · {manifest['num_samples']} test "
           f"samples · {manifest['num_classes']} classes · {len(manifest['corruptions'])} corruptions at "
           f"severities {', '.join(map(str, manifest['severities']))}")
models = data.query(queries.models, catalog)
if models.is_empty():
    st.info("This store has no models yet. Add some with `python -m compute extract --store "
            f"{hosting.store_label()} --checkpoints ...`.")
    st.stop()
summary = data.query(matrices.model_summary, catalog)
if catalog.card_problems:  # values of another type read as null: drawn without them, named here once
    shown = "; ".join(catalog.card_problems[:5]) + (f"; and {len(catalog.card_problems) - 5} more"
                                                    if len(catalog.card_problems) > 5 else "")
    st.warning(escape(f"Some model cards in {hosting.store_label()} hold a value of the wrong type, or none where "
                      f"one is needed; those values are left out of the charts: {shown} "
                      "(`python -m compute verify` names them)."))
columns = st.columns(4)
columns[0].metric("models", models.height)
columns[1].metric("methods", models["method"].n_unique())
columns[2].metric("best clean accuracy", f"{summary['clean_accuracy'].max():.3f}")
columns[3].metric("best corruption accuracy", f"{summary['corruption_accuracy'].max() or 0:.3f}")
selection = sidebar.selection()
if selection.level == "group":
    paper = data.query(report.report_table, catalog, "group")
    first = data.query(uncertainty.groups, catalog).group_by("group_id", maintain_order=True).agg(
        pl.col("model_id").first())
    points = (paper.filter(pl.col("column_name").is_in(["clean", "mean corruption"]))
              .join(first, left_on="row", right_on="group_id")
              .select("model_id", pl.col("row").alias("group_id"), "method", "target_sparsity", "sparsity", "seeds",
                      pl.col("column_name").replace({"mean corruption": "corrupted"}).alias("images"),
                      pl.col("mean").alias("accuracy"), "low", "high"))
    linking.chart(figures.spec(group_accuracy_vs_sparsity, points), key="overview_chart")
    st.caption("One point per group (models differing only in seed): the mean over seeds with its 95 % t "
               "interval across seeds, at the group's measured sparsity (the weights removed: channel pruning "
               "removes more than its channel target). Click a point to select the group's first model on every "
               "page.")
else:
    linking.chart(figures.spec(accuracy_vs_sparsity, summary), key="overview_chart")
    st.caption("Click a point to select that model on every page. Corruption accuracy is the mean over every "
               "corruption and severity in the store; mCE is relative to each model's reference (its base).")
    if note := unplaced(summary, PLACED_BY_SPARSITY):
        st.caption(note)
if has_costs(models):
    st.subheader("Robustness vs size and latency")
    costs = models.join(summary.select("model_id", "corruption_accuracy"), on="model_id", how="left")
    linking.chart(figures.spec(robustness_vs_cost, costs), key="cost_chart", stretch=False)
    if note := unplaced(costs, PLACED_BY_COST):
        st.caption(note)
    st.caption("Each model's mean corruption accuracy (filled) and clean accuracy (hollow) against the bytes of "
               "its file and its CPU time per image at batch 1 and 256, measured at extraction (the load average "
               "then is in the table below). Mask pruning changes neither; removed channels and int8 change "
               "both. Click a point to select that model on every page.")
st.subheader("Lineage")
linking.chart(figures.spec(lineage_tree, models, selection.model), key="lineage_chart")
st.caption("Each model right of its base (the model it was derived from), the edge labelled with its operation "
           "(or its method and target sparsity); models without a base in the store start a row of their own. Click a model to select "
           "it on every page." + ("" if models["base"].is_not_null().any() else
                                  " No model of this store names a base: " + data.NO_REFERENCE))
table = models.with_columns(
    pl.col("loader").str.json_path_match("$.kind").fill_null("checkpoint").alias("loaded_from"),
).drop("hparams", "checkpoint", "clean_accuracy", "loader").join(
    summary.select("model_id", "clean_accuracy", "corruption_accuracy", "corruption_drop_vs_reference", "mce",
                   "relative_mce"), on="model_id", how="left")
st.dataframe(table, hide_index=True)
downloads(table, "models")

if selection.level == "group":
    st.subheader("Replicate groups")
    paper = data.query(report.report_table, catalog, "group")
    wide = report.report_wide(paper.filter(pl.col("column_name").is_in(
        ["clean", "mean corruption", "relative mCE"])))
    st.dataframe(wide, hide_index=True)
    st.caption("One row per (architecture, method, target sparsity): the mean over its seeds [its 95 % "
               "Student t interval across seeds] (one seed: the Wilson interval over the test samples). "
               "Switch **Rows** in the sidebar to individual models.")
    downloads(wide, "groups")

st.subheader("Pruning-identified exemplars")
pie = data.query(presets.pie_counts, catalog, selection.corruption, selection.severity)
if pie.is_empty():
    st.info("PIE counts need models with a reference (their base, or the sidebar's **Reference**) and "
            "predictions in the selected setting." + ("" if data.has_reference(catalog) else " " + data.NO_REFERENCE))
else:
    st.dataframe(pie.select("method", "target_sparsity", "replicates", "reference_replicates", "pie_samples"),
                 hide_index=True)
    single = pie.filter(pl.col("single_seed"))
    note = (" With a single seed on either side the modal prediction is the one model's prediction, so here "
            f"PIE reduces to \"flipped by pruning\" (rows: {', '.join(single['group_id'].to_list())})."
            if single.height else "")
    st.caption(f"Samples ({selection.setting}) whose modal prediction over a group's pruned seeds differs from "
               f"the modal prediction over its reference group's seeds (Hooker et al. 2019).{note} The Samples page lists "
               "them (preset `pruning_identified_exemplars`).")
