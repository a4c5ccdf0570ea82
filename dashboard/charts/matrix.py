"""The evaluation matrix page's charts: the model-by-setting heat map (with its intervals and significance),
its split into one block per method, and the reliability diagram."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import altair as alt
import polars as pl

from dashboard.charts.common import FADED, setting_label, with_model_label
from dashboard.charts.palette import method_colours
from store import vocabulary


def evaluation_matrix(cells: pl.DataFrame, value: str, legend: str, columns: Sequence[str],
                      diverging_at: float | None = None, domain: Sequence[float] | None = None,
                      selected: Mapping[str, object] | None = None) -> alt.Chart:
    """Model (rows, grouped by method, by sparsity within) by setting (columns) heat map of `value`.

    `cells` has model_id, method, target_sparsity, corruption, `value` and, per severity, severity.
    `columns` orders the settings ('clean', 'fog s3', ... or bare corruption names). With `diverging_at`,
    a diverging scale centred there, red above (for metrics where higher is worse: a drop, a corruption
    error); otherwise viridis over `domain`. Clicking a cell selects (model, corruption, severity); the
    `selected` one (same fields) is outlined.
    """
    has_severity = "severity" in cells.columns
    data = with_model_label(cells).with_columns(
        (setting_label(pl.col("corruption"), pl.col("severity")) if has_severity
         else pl.col("corruption")).alias("setting"))
    present = set(data["setting"].to_list())
    settings = [s for s in columns if s in present] + sorted(present - set(columns))
    rows = data.sort(pl.col("method") != vocabulary.UNPRUNED, *vocabulary.MODEL_SORT, "model_id")
    models_order = rows.unique("model", maintain_order=True)["model"].to_list()
    methods = rows["method"].unique(maintain_order=True).to_list()
    data = data.with_columns(pl.col("method").replace_strict({m: i for i, m in enumerate(methods)},
                                                             return_dtype=pl.Int64).alias("method_order"))
    initial = selected_cell(cells, selected) or alt.Undefined
    cell = alt.selection_point(name="cell", fields=_cell_fields(cells), on="click", value=initial, empty=False)
    if diverging_at is not None:
        scale = alt.Scale(scheme="redblue", domainMid=diverging_at, reverse=True)
    else:
        scale = alt.Scale(scheme="viridis", domain=list(domain) if domain else alt.Undefined)
    tooltip = ["model_id", "method", alt.Tooltip("target_sparsity:Q", title="target sparsity", format=".0%"),
               "corruption", *(["severity"] if has_severity else []),
               alt.Tooltip(f"{value}:Q", title=legend, format=".3f"),
               *(alt.Tooltip(f"{value}_{end}:Q", title=f"95% {end}", format=".3f") for end in ("low", "high")
                 if f"{value}_{end}" in data.columns)]
    return alt.Chart(data.to_pandas()).mark_rect().encode(
        x=alt.X("setting:N", sort=settings, title="corruption and severity",
                axis=alt.Axis(labelAngle=-60, labelLimit=140, orient="top", labelOverlap=False)),
        y=alt.Y("model:N", sort=models_order, title="model (method, target sparsity)",
                axis=alt.Axis(labelLimit=260, labelOverlap=False)),
        # Above the matrix, not beside it: a wide matrix scrolls sideways and must not hide its legend.
        color=alt.Color(f"{value}:Q", title=legend, scale=scale,
                        legend=alt.Legend(orient="top", titleLimit=600, gradientLength=240, titleOrient="left")),
        stroke=alt.condition(cell, alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition(cell, alt.value(2.5), alt.value(0)),
        tooltip=tooltip,
    ).add_params(cell).properties(title=f"{legend[0].upper()}{legend[1:]} by model and corruption", height=alt.Step(22),
                                  width=alt.Step(max(14, min(60, 900 // max(len(settings), 1)))))


def _cell_fields(cells: pl.DataFrame) -> list[str]:
    """The fields a click on a matrix cell selects: model_id, corruption and, per severity, severity."""
    return ["model_id", "corruption"] + (["severity"] if "severity" in cells.columns else [])


def selected_cell(cells: pl.DataFrame, selected: Mapping[str, object] | None) -> list[dict[str, object]] | None:
    """The value of the matrix's click selection (`cell`) that outlines the `selected` cell (its
    _cell_fields); None where `selected` lacks one of them."""
    fields = _cell_fields(cells)
    return [{f: selected[f] for f in fields}] if selected and all(f in selected for f in fields) else None


MATRIX_ROWS = 40  # more rows than this: the evaluation matrix is split into one block of rows per method


def by_method(matrix: alt.Chart) -> alt.VConcatChart:
    """An evaluation_matrix / interval_matrix split into one block of rows per method (dense first, as the
    rows), stacked, each block titled with its method in its palette colour, as tall as its own rows and with the column labels
    above it: with a hundred models the rows stay grouped, every row keeps its label and, scrolled to any
    block, the columns stay named. One click selection over all blocks."""
    title = matrix.title
    methods = (matrix.data[["method", "method_order"]].drop_duplicates().sort_values("method_order")["method"]
               .tolist())
    rows = matrix.encoding.y.copy(deep=True)
    rows.title = None  # the block's title names the method
    colours = method_colours(methods)  # the block titles are the method legend: the one palette
    blocks = [matrix.transform_filter(alt.datum.method == method).encode(y=rows).properties(
        title=alt.TitleParams(method, anchor="start", fontSize=13, color=colours[method]))
        for method in methods]
    with warnings.catch_warnings():  # the blocks share their one selection on purpose: Altair merges it
        warnings.filterwarnings("ignore", "Automatically deduplicated selection parameter", UserWarning)
        return alt.vconcat(*blocks, title=title, spacing=12).resolve_scale(y="independent")


def interval_matrix(cells: pl.DataFrame, value: str, legend: str, columns: Sequence[str], correction: str,
                    diverging_at: float | None = None, domain: Sequence[float] | None = None,
                    selected: Mapping[str, object] | None = None) -> alt.Chart:
    """evaluation_matrix of analysis.uncertainty cells (with_significance applied): cells whose drop vs reference
    is not significant after `correction` are faded and outlined in dashed grey, and the tooltip gives the 95 % intervals, the
    p-value and the adjusted p-value. `cells` has model_id (a group's first model), method,
    target_sparsity, corruption, severity, `value`, accuracy_low/high, drop_vs_reference, drop_low/high,
    p_value, p_adjusted, significant and, for groups, group_id and seeds."""
    significance = (pl.when(pl.col("significant").is_null()).then(pl.lit("no test"))
                    .when(pl.col("significant")).then(pl.lit("significant")).otherwise(pl.lit("not significant")))
    data = cells.with_columns(significance.alias("significance"))
    if "group_id" in data.columns and "seeds" in data.columns:
        data = data.with_columns(pl.col("seeds").cast(pl.Int64))
    data = data.drop([c for c in ("model_ids",) if c in data.columns])
    base = evaluation_matrix(data, value, legend, columns, diverging_at=diverging_at, domain=domain,
                             selected=selected)
    extra = [c for c in ("group_id", "seeds") if c in data.columns]
    tooltip = [*extra, "model_id", "method", alt.Tooltip("target_sparsity:Q", title="target sparsity", format=".0%"),
               "corruption", "severity",
               alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("accuracy_low:Q", title="accuracy 95% low", format=".3f"),
               alt.Tooltip("accuracy_high:Q", title="accuracy 95% high", format=".3f"),
               alt.Tooltip("drop_vs_reference:Q", title="drop vs reference", format=".3f"),
               alt.Tooltip("drop_low:Q", title="drop 95% low", format=".3f"),
               alt.Tooltip("drop_high:Q", title="drop 95% high", format=".3f"),
               alt.Tooltip("p_value:Q", title="p-value", format=".2g"),
               alt.Tooltip("p_adjusted:Q", title=f"p-value ({correction})", format=".2g"), "significance"]
    # The opacity itself as data (scale=None): a nominal opacity scale interpolates its range. Fading alone
    # reads as a paler colour, so a not-significant cell also gets a dashed grey outline (the selected
    # cell's black outline wins).
    faint = "datum.significance == 'not significant'"
    selected_cell = {"param": "cell", "empty": False}
    return base.transform_calculate(opacity=f"{faint} ? {FADED} : 1").encode(
        opacity=alt.Opacity("opacity:Q", scale=None, legend=None), tooltip=tooltip,
        stroke={"condition": [{**selected_cell, "value": "black"}, {"test": faint, "value": "#555555"}],
                "value": None},
        strokeWidth={"condition": [{**selected_cell, "value": 2.5}, {"test": faint, "value": 1}], "value": 0},
        strokeDash={"condition": [{**selected_cell, "value": [1, 0]}, {"test": faint, "value": [3, 2]}],
                    "value": [1, 0]})


def matrix_chart(cells: pl.DataFrame, value: str, legend: str, columns: Sequence[str], correction: str | None = None,
                 blocks: bool = False, diverging_at: float | None = None,
                 domain: Sequence[float] | None = None) -> alt.Chart | alt.VConcatChart:
    """The matrix as the page draws it: interval_matrix of cells with intervals (`correction` names the
    one applied), else evaluation_matrix; with `blocks` (many rows), split into one block per method. No
    cell is outlined: the page sets the selected one (selected_cell) on the spec built once for all."""
    scale = {"diverging_at": diverging_at, "domain": domain}
    matrix = (interval_matrix(cells, value, legend, columns, correction, **scale) if correction is not None
              else evaluation_matrix(cells, value, legend, columns, **scale))
    return by_method(matrix) if blocks else matrix


def reliability_diagram(bins: pl.DataFrame, title: str) -> alt.LayerChart:
    """Accuracy against mean confidence per confidence bin (analysis.calibration.calibration_bins), one line
    per `curve` (e.g. the model and its reference), point area by samples; the diagonal is perfect
    calibration, points below it are overconfident."""
    diagonal = alt.Chart(pl.DataFrame({"confidence": [0.0, 1.0], "accuracy": [0.0, 1.0]}).to_pandas()).mark_line(
        color="grey", strokeDash=[4, 4]).encode(x="confidence:Q", y="accuracy:Q")
    scale = alt.Scale(domain=[0, 1])
    base = alt.Chart(bins.to_pandas()).encode(
        x=alt.X("confidence:Q", title="mean confidence in the bin", scale=scale),
        y=alt.Y("accuracy:Q", title="accuracy in the bin", scale=scale),
        color=alt.Color("curve:N", title="model", legend=alt.Legend(orient="bottom", labelLimit=400, columns=1)),
        tooltip=["curve", alt.Tooltip("bin:Q", title="bin"), alt.Tooltip("samples:Q"),
                 alt.Tooltip("confidence:Q", format=".3f"), alt.Tooltip("accuracy:Q", format=".3f")])
    return alt.layer(diagonal, base.mark_line(), base.mark_circle().encode(
        size=alt.Size("samples:Q", title="samples", legend=None))).properties(title=title, width=360, height=360)
