"""Evaluation matrix: every model under every corruption and severity, in the metric of the sidebar."""

import polars as pl
import streamlit as st

from analysis import calibration, queries, report, stats, uncertainty
from dashboard import data, figures, hosting, linking, sidebar
from dashboard.charts.common import setting_order
from dashboard.charts.matrix import MATRIX_ROWS, matrix_chart, reliability_diagram, selected_cell
from dashboard.metrics import METRICS
from dashboard.pages import PAGES
from dashboard.text import code, downloads, escape

HEIGHT = 760  # pixels of the scrolling box that holds a matrix of many rows

st.title("Evaluation matrix")
catalog = data.open_catalog()
selection = sidebar.selection()
manifest = catalog.manifest
if len(manifest["severities"]) > 1:  # with a single severity there is nothing to choose
    shown = st.select_slider("Severity shown", ["all", *manifest["severities"]], value="all", key="matrix_severity",
                             persist_state="session", help="one severity, or every severity side by side")
else:
    shown = "all"

metric = METRICS[selection.metric]
correction = st.segmented_control("Multiple-comparison correction", list(uncertainty.CORRECTIONS), default="holm",
                                  key="matrix_correction", persist_state="session", required=True,
                                  format_func=uncertainty.CORRECTIONS.get, disabled=not metric.intervals,
                                  help="applied to the drop-vs-reference p-values of the cells shown")
arguments = (*metric.arguments, selection.level) if metric.intervals else metric.arguments
cells = data.query(metric.query, catalog, *arguments)
if metric.note:
    st.caption(metric.note)
if not data.has_reference(catalog):  # drops, p-values and relative errors need a model to compare with
    st.info(data.NO_REFERENCE)
if not metric.intervals and selection.level == "group":
    st.caption("Rows are single models for this metric: groups and intervals cover accuracy and its drop vs reference.")
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
columns = (manifest["corruptions"] if metric.per_corruption
           else setting_order(manifest["corruptions"], severities))
selected = {"model_id": selection.model, "corruption": selection.corruption, "severity": selection.severity}
scale = {"domain": metric.domain, "diverging_at": metric.diverging_at}
if metric.intervals:
    cells = uncertainty.with_significance(cells, correction)  # over exactly the cells shown
rows_shown = cells["model_id"].n_unique()
figure = figures.spec(matrix_chart, cells, metric.value, metric.label, columns,  # built once for every selected cell
                      uncertainty.CORRECTIONS[correction] if metric.intervals else None,
                      blocks=rows_shown > MATRIX_ROWS, **scale)
figure = figures.with_selection(figure, "cell", selected_cell(cells, selected))
if "relative_ce_note" in cells.columns:  # relative CE left out where the reference barely suffers
    left_out = cells.filter(pl.col("relative_ce_note").is_not_null())
    for corruption, part in left_out.group_by("corruption", maintain_order=True):
        st.caption(f"Blank {escape(str(corruption[0]))} cells ({part.height} models): "
                   f"{escape(part['relative_ce_note'][0])}.")
if rows_shown > MATRIX_ROWS:  # many models: one block per method, in a box that scrolls with its labels
    with st.container(height=HEIGHT):
        linking.chart(figure, key="matrix_chart", stretch=False)
    st.caption(f"{rows_shown} rows, one block per method: scroll inside the box (each row keeps its label), or "
               "pick fewer **Methods** in the sidebar.")
else:
    linking.chart(figure, key="matrix_chart", stretch=False)
if metric.intervals:
    tested = cells.filter(pl.col("significant").is_not_null())
    rows = "groups (mean over seeds)" if selection.level == "group" else "models"
    st.caption(f"Rows: {rows}. Faded cells with a dashed outline: the drop vs reference is **not significant at 0.05** after the "
               f"{uncertainty.CORRECTIONS[correction]} correction over the {tested.height} cells shown "
               f"({tested['significant'].sum()} significant). Per model: exact McNemar test on the samples only "
               f"one of the two models gets right; per group of seeds: t test over seeds (the seed is the unit; "
               f"none below {stats.MIN_SEEDS} seeds). Hover a cell for its 95 % intervals and p-values.")
    too_few = uncertainty.too_few_seeds(cells) if selection.level == "group" else []
    if too_few:
        st.caption(f"No mark on groups of {' or '.join(map(str, too_few))} seeds: "
                   f"{uncertainty.too_few_seeds_note(too_few)}.")
st.caption(f"Selected: model {code(selection.model)}, {selection.setting}. Click a cell to select it on every "
           "page, then open Local geometry or Sample.")
left, right, _ = st.columns([1, 1, 1])
for column, path in ((left, "local"), (right, "global")):
    column.page_link(PAGES[path].script, label=f"{PAGES[path].title} of the selection", icon=PAGES[path].icon)
if metric.query is calibration.calibration_cells:
    st.subheader("Reliability diagram of the selection")
    adaptive = selection.metric == "adaptive_ece"
    reference = data.query(queries.models, catalog).filter(pl.col("model_id") == selection.model)["reference_model_id"]
    curves = [selection.model] + [m for m in reference.to_list() if m and m != selection.model]
    bins = pl.concat([data.query(calibration.calibration_bins, catalog, adaptive, calibration.BINS, model_id,
                                 selection.corruption, selection.severity).with_columns(pl.lit(model_id).alias("curve"))
                      for model_id in curves])
    if bins.is_empty():
        st.info("The selected model has no predictions in the selected setting.")
    else:
        linking.chart(figures.spec(reliability_diagram, bins, f"Calibration ({selection.setting})"), stretch=False)
        st.caption(f"{calibration.BINS} {'equal-mass' if adaptive else 'equal-width'} confidence bins of the "
                   "selected model and its reference: on the dashed diagonal confidence equals accuracy; below "
                   "it the model is overconfident.")
with st.expander("Table"):
    st.dataframe(cells, hide_index=True)
    downloads(cells.drop([c for c in ("model_ids",) if c in cells.columns]), f"matrix-{selection.metric}")
with st.expander("Paper table: methods x corruptions with 95 % intervals"):
    paper = data.query(report.report_table, catalog, selection.level)
    paper = paper.filter(pl.col("method").is_in(list(selection.methods)))
    notes = data.query(report.report_notes, catalog, selection.level)
    st.dataframe(report.report_wide(report.select_columns(paper)), hide_index=True)
    st.caption("Mean over severities, cells mean [95 % interval]; groups: t interval across seeds, models: Wilson "
               "interval. " + " ".join(escape(note) + "." for note in notes) + " "
               f"The same as `python -m compute report --store {hosting.store_label()} --by {selection.level}`.")
    left, right, _ = st.columns([1, 1, 6])
    for column, fmt, mime in ((left, "markdown", "text/markdown"), (right, "latex", "application/x-tex")):
        column.download_button(fmt, report.render_report(paper, fmt, level=selection.level, notes=notes),
                               file_name=f"report.{fmt[:3]}",
                               mime=mime, on_click="ignore", key=f"report-{fmt}", icon=":material/download:")
    downloads(paper, "report")
