"""Robustness predictors: across models, a geometric statistic of each model against its robustness, with
Spearman's rho and a bootstrap interval over models; the paper's finding one click away."""

import polars as pl
import streamlit as st

from analysis import predictors
from dashboard import charts, data, linking, sidebar
from dashboard.text import downloads
from store import layout

st.title("Robustness predictors")
catalog = data.open_catalog()
selection = sidebar.selection()
left, middle, right = st.columns(3)
statistic = left.selectbox("Geometric statistic", list(predictors.STATISTICS), key="predictor_statistic",
                           format_func=predictors.STATISTICS.get, persist_state="session")
target = middle.selectbox("Robustness", list(predictors.TARGETS), key="predictor_target",
                          format_func=lambda t: predictors.TARGETS[t][0], persist_state="session")
setting = right.segmented_control("Statistic measured on", ["clean", "selected"], default="clean",
                                  key="predictor_setting", persist_state="session", required=True,
                                  format_func={"clean": "clean images", "selected": "the sidebar's setting"}.get)
corruption, severity = ((layout.CLEAN, 0) if setting == "clean" else (selection.corruption, selection.severity))
where = "clean images" if corruption == layout.CLEAN else f"{corruption}, severity {severity}"

points = data.query(predictors.model_geometry, catalog, corruption, severity)
points = points.filter(pl.col("method").is_in(list(selection.methods)))
if points.height < 3:
    st.info("A rank correlation across models needs at least 3 models with predictions in this setting; "
            "pick more methods in the sidebar or add models.")
    st.stop()
table = predictors.correlations(points, target)
row = table.filter(pl.col("statistic") == statistic).row(0, named=True)
target_title = predictors.TARGETS[target][0]
linking.chart(charts.predictor_scatter(points, statistic, target, f"{predictors.STATISTICS[statistic]} ({where})",
                                     target_title, f"{predictors.STATISTICS[statistic]} vs {target_title}"),
            key="predictor_chart")
if row["rho"] is None:
    st.info("Spearman's rho is undefined here (a constant statistic or robustness across these models).")
else:
    excludes = row["low"] is not None and (row["low"] > 0 or row["high"] < 0)
    st.markdown(f"Spearman's rho = **{row['rho']:.2f}** (95 % bootstrap interval over the {row['models']} models "
                f"{row['low']:.2f} to {row['high']:.2f}; p = {row['p_value']:.2g}): "
                + ("the interval excludes 0, so this statistic orders the models by robustness in this study."
                   if excludes else "the interval includes 0: no evidence of a monotone relation in this study."))
st.caption("One point per model, coloured by method; click one to select it on every page. The interval "
           "resamples the models with replacement (2,000 times).")
st.subheader("Every statistic")
st.dataframe(table, hide_index=True)
downloads(points, "robustness-predictors")

st.subheader("The paper's finding")
if st.toggle("Test it on this study: biprop has larger mean and smaller variance of angles, and is more robust",
             key="predictor_paper", persist_state="session"):
    finding = predictors.paper_finding(points, target)
    st.dataframe(finding, hide_index=True)
    holds = finding["holds"].to_list()
    if any(h is None for h in holds):
        st.info("This study cannot test it: it needs biprop models and other pruned models among the methods shown.")
    elif all(holds):
        st.success("This study agrees with the paper on all three points.")
    else:
        failed = ", ".join(c for c, h in zip(finding["claim"].to_list(), holds, strict=True) if not h)
        st.warning(f"This study does not agree with the paper on: {failed}.")
    st.caption(f"Means over models, statistics on {where}; biprop against every other pruned method shown.")
