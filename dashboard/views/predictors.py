"""Robustness predictors: across models, a geometric statistic of each model against its robustness, with
Spearman's rho and the partial one controlling for clean accuracy, bootstrap intervals, adjusted p-values
and a verdict that says only what they support; the paper's finding as a test one click away."""

import polars as pl
import streamlit as st

from analysis import predictors, uncertainty
from dashboard import data, figures, linking, sidebar
from dashboard.charts.predictors import predictor_scatter
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
correction = st.segmented_control("Adjust p-values over the statistics", list(uncertainty.CORRECTIONS),
                                  default="holm", key="predictor_correction", persist_state="session",
                                  required=True, format_func=lambda c: uncertainty.CORRECTIONS[c])
table = data.query(predictors.method_correlations, catalog, corruption, severity, tuple(selection.methods), target,
                   correction)  # the bootstrap once per selection
row = table.filter(pl.col("statistic") == statistic).row(0, named=True)
target_title = predictors.TARGETS[target][0]
linking.chart(figures.spec(predictor_scatter, points, statistic, target,
                           f"{predictors.STATISTICS[statistic]} ({where})", target_title,
                           f"{predictors.STATISTICS[statistic]} vs {target_title}"), key="predictor_chart")
units = f"{row['models']} models" + (f" in {row['units']} groups" if row["units"] < row["models"] else "")


def interval(prefix: str) -> str:
    low, high = row[prefix + "low"], row[prefix + "high"]
    bounds = "no interval" if low is None else f"95 % interval {low:.2f} to {high:.2f}"
    return f"{row[prefix + 'rho']:.2f} ({bounds}, adjusted p = {row[prefix + 'p_adjusted']:.2g})"


if row["rho"] is None:
    st.info(f"Spearman's rho is undefined here ({predictors.VERDICTS['undefined']}).")
else:
    partial = ("not computable" if row["partial_rho"] is None else interval("partial_"))
    st.markdown(f"**{row['verdict'].capitalize()}** over {units}: Spearman's rho = {interval('')}: "
                f"{row['raw_words']}; partial rho controlling for clean accuracy = {partial}"
                + ("" if row["partial_rho"] is None else f": {row['partial_words']}") + ". "
                f"{predictors.VERDICTS[row['verdict']].capitalize()}.")
st.caption("One point per model, coloured by method; click one to select it on every page. The intervals "
           "resample the models with replacement (2,000 times), whole replicate groups when a group has several "
           f"seeds. p-values: {uncertainty.CORRECTIONS[correction]} over the {table.height} statistics, the raw "
           "and the partial correlations each a family; a correlation counts as evidence when its adjusted "
           f"p-value is below {predictors.ALPHA} and its interval excludes 0.")
st.subheader("Every statistic")
st.dataframe(table, hide_index=True)
downloads(points, "robustness-predictors")

st.subheader("The paper's finding")
if st.toggle("Test it on this study: supermask models (" + ", ".join(predictors.SUPERMASK_METHODS) + ") have a "
             "larger mean and a smaller spread of angles, and are more robust", key="predictor_paper",
             persist_state="session"):
    finding = predictors.paper_finding(points, target, correction)
    st.dataframe(finding, hide_index=True)
    verdicts = finding["verdict"].to_list()
    sizes = finding.row(0, named=True)
    rests_on = (f"{sizes['supermask_models']} supermask and {sizes['other_models']} other pruned models "
                "(quantized-only models are not pruned)")
    if "cannot test" in verdicts:
        st.info(f"This study cannot test it ({rests_on}): it needs at least 2 supermask models and 2 other "
                "pruned models among the methods shown.")
    elif all(v == "supported" for v in verdicts):
        st.success(f"On {rests_on}, every part of the paper's finding holds with an adjusted p below "
                   f"{predictors.ALPHA}.")
    else:
        parts = "; ".join(f"{c}: {v}" for c, v in zip(finding["claim"].to_list(), verdicts, strict=True))
        st.warning(f"On {rests_on}, the paper's finding is not fully supported ({parts}).")
    st.caption(f"Statistics on {where}. effect = supermask mean - other pruned mean, with Welch's 95 % interval "
               f"and two-sided p-value ({uncertainty.CORRECTIONS[correction]} over the three tests); every model "
               "counts once, so seeds of one group count as separate models.")
