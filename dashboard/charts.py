"""Charts as pure functions: Polars frame in, Altair chart out (testable without Streamlit).

Every chart has a title, axis titles with units, and tooltips. Charts a user can click carry a point
selection whose fields are named like the shared selection (model_id, corruption, severity, sample_id,
model_b; see dashboard.linking.apply_point). Frames reaching a chart are small: anything that could be
large is aggregated in DuckDB first (analysis.queries).
"""

from __future__ import annotations

import base64
import io
import itertools
import textwrap
import warnings
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import polars as pl

DEGREES = "°"
CORRECTNESS = alt.Scale(domain=[True, False], range=["#4c78a8", "#e45756"])
CHANGES = alt.Scale(domain=["right in both", "only A right", "only B right", "wrong in both"],
                    range=["#9ecae9", "#e45756", "#54a24b", "#4c4c4c"])
FACET_COLUMNS = 5
OTHER_CLASSES = "other classes"  # the grey of the classes not picked, on studies with many classes
MAX_MARKS = 5000  # above this many samples a chart gets aggregates from DuckDB, not one mark per sample
BINS = 24  # grid size of the 2-D histograms that replace scatter plots on large studies


# One colour per pruning method, the same on every chart: Paul Tol's "muted" scheme (distinct for the
# common colour-vision deficiencies) for the known methods, then Okabe & Ito's for any other. Ten are
# pairwise distinct; dense and biprop, ft and random no longer share a hue.
METHOD_COLOURS: dict[str, str] = {
    "dense": "#332288", "ft": "#88ccee", "lrr": "#44aa99", "ltr": "#117733", "gmp": "#999933", "snip": "#ddcc77",
    "random": "#cc6677", "biprop": "#882255", "edgepopup": "#aa4499",
}
EXTRA_METHOD_COLOURS = ("#000000", "#e69f00", "#d55e00", "#56b4e9", "#0072b2", "#009e73", "#cc79a7", "#888888")


def method_colour(methods: Sequence[str], title: str = "method") -> alt.Color:
    """The colour channel of `method` over these methods: METHOD_COLOURS for the known ones, the extra
    colours in turn for the rest (repeated only past 8 other methods)."""
    domain = list(dict.fromkeys(methods))
    others = itertools.cycle(EXTRA_METHOD_COLOURS)
    colours = [METHOD_COLOURS[m] if m in METHOD_COLOURS else next(others) for m in domain]
    return alt.Color("method:N", title=title, scale=alt.Scale(domain=domain, range=colours),
                     legend=alt.Legend(titleLimit=400, labelLimit=300))


def model_labels(frame: pl.DataFrame) -> pl.Series:
    """'method 90%' (or 'dense') per row; where two models would read alike, the model id is added."""
    short = (pl.when(pl.col("method") == "dense").then(pl.lit("dense"))
             .otherwise(pl.col("method") + pl.lit(" ") + (pl.col("target_sparsity") * 100).round(0)
                        .cast(pl.Int64).cast(pl.String) + pl.lit("%")))
    labelled = frame.select("model_id", short.alias("short")).with_columns(
        pl.col("model_id").n_unique().over("short").alias("sharing"))
    return labelled.select(pl.when(pl.col("sharing") > 1)
                           .then(pl.col("short") + pl.lit(" · ") + pl.col("model_id"))
                           .otherwise(pl.col("short")).alias("model"))["model"]


def with_model_label(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with a `model` column (model_labels)."""
    return frame.with_columns(model_labels(frame))


def setting_order(corruption_order: Sequence[str], severities: Sequence[int]) -> list[str]:
    """Column labels 'clean', then 'name s1'.. in the benchmark's order (the store manifest)."""
    return ["clean"] + [f"{name} s{s}" for name in corruption_order for s in severities]


def setting_label(corruption: pl.Expr, severity: pl.Expr) -> pl.Expr:
    """'clean' or 'name s<severity>'."""
    return (pl.when(corruption == "clean").then(pl.lit("clean"))
            .otherwise(corruption + pl.lit(" s") + severity.cast(pl.String)))


# -- overview --------------------------------------------------------------------------------------------

def accuracy_vs_sparsity(summary: pl.DataFrame) -> alt.LayerChart:
    """Clean and mean corruption accuracy against measured sparsity, one line per method, each starting
    at the dense model.

    `summary` has model_id, method, sparsity, clean_accuracy and, optionally, corruption_accuracy (as
    analysis.matrices.model_summary returns them). A click selects the model.
    """
    measures = [c for c in ("clean_accuracy", "corruption_accuracy") if c in summary.columns]
    data = (summary.select("model_id", "method", pl.col("sparsity").cast(pl.Float64), *measures)
            .unpivot(measures, index=["model_id", "method", "sparsity"], variable_name="images",
                     value_name="accuracy")
            .with_columns(pl.col("images").str.replace("_accuracy", "").replace({"corruption": "corrupted"})))
    dense = data.filter(pl.col("method") == "dense")
    methods = data.filter(pl.col("method") != "dense")["method"].unique(maintain_order=True)
    lines = pl.concat([data, *(dense.with_columns(pl.lit(m).alias("method")) for m in methods)])
    encoding = {
        "x": alt.X("sparsity:Q", title="measured sparsity (fraction of zero weights)",
                   scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
        "y": alt.Y("accuracy:Q", title="accuracy (fraction correct)", scale=alt.Scale(zero=False)),
        "color": method_colour(lines["method"].to_list()),
        "strokeDash": alt.StrokeDash("images:N", title="images", sort=["clean", "corrupted"]),
        "shape": alt.Shape("images:N", title="images", sort=["clean", "corrupted"]),
        "tooltip": ["model_id", "method", "images", alt.Tooltip("sparsity:Q", format=".3f"),
                    alt.Tooltip("accuracy:Q", format=".4f")],
    }
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    line = alt.Chart(lines.to_pandas()).mark_line(opacity=0.7).encode(**encoding)
    points = alt.Chart(data.to_pandas()).mark_point(size=80, filled=True).encode(**encoding).add_params(pick)
    return (line + points).properties(
        title="Accuracy vs sparsity (clean, and mean over every corruption and severity)", height=340)


# -- evaluation matrix -----------------------------------------------------------------------------------

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
    rows = data.sort(pl.col("method") != "dense", "method", "target_sparsity", "model_id")
    models_order = rows.unique("model", maintain_order=True)["model"].to_list()
    methods = rows["method"].unique(maintain_order=True).to_list()
    data = data.with_columns(pl.col("method").replace_strict({m: i for i, m in enumerate(methods)},
                                                             return_dtype=pl.Int64).alias("method_order"))
    fields = ["model_id", "corruption"] + (["severity"] if has_severity else [])
    initial = [{f: selected[f] for f in fields}] if selected and all(f in selected for f in fields) else alt.Undefined
    cell = alt.selection_point(name="cell", fields=fields, on="click", value=initial, empty=False)
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


MATRIX_ROWS = 40  # more rows than this: the evaluation matrix is split into one block of rows per method


def by_method(matrix: alt.Chart) -> alt.VConcatChart:
    """An evaluation_matrix / interval_matrix split into one block of rows per method (dense first, as the
    rows), stacked, each block titled with its method, as tall as its own rows and with the column labels
    above it: with a hundred models the rows stay grouped, every row keeps its label and, scrolled to any
    block, the columns stay named. One click selection over all blocks."""
    title = matrix.title
    methods = (matrix.data[["method", "method_order"]].drop_duplicates().sort_values("method_order")["method"]
               .tolist())
    rows = matrix.encoding.y.copy(deep=True)
    rows.title = None  # the block's title names the method
    blocks = [matrix.transform_filter(alt.datum.method == method).encode(y=rows).properties(
        title=alt.TitleParams(method, anchor="start", fontSize=13)) for method in methods]
    with warnings.catch_warnings():  # the blocks share their one selection on purpose: Altair merges it
        warnings.filterwarnings("ignore", "Automatically deduplicated selection parameter", UserWarning)
        return alt.vconcat(*blocks, title=title, spacing=12).resolve_scale(y="independent")


# -- similarity ------------------------------------------------------------------------------------------

def model_map(embedding: pl.DataFrame, edges: pl.DataFrame) -> alt.LayerChart:
    """Every model as a point of its 2-D embedding (coloured by method, sized by sparsity), linked by the
    minimum spanning tree's edges. A click selects the model."""
    points = with_model_label(embedding)
    ends = points.select("model_id", "x", "y")
    lines = (edges.join(ends, left_on="source", right_on="model_id")
             .join(ends, left_on="target", right_on="model_id", suffix="_target"))
    projection = (points["projection"][0] if points.height else "umap").upper()
    axis_x = alt.X("x:Q", title=f"{projection} 1 (unitless)", scale=alt.Scale(zero=False, padding=30),
                   axis=alt.Axis(labels=False, ticks=False))
    axis_y = alt.Y("y:Q", title=f"{projection} 2 (unitless)", scale=alt.Scale(zero=False, padding=30),
                   axis=alt.Axis(labels=False, ticks=False))
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    tree = alt.Chart(lines.to_pandas()).mark_rule(color="#999", strokeWidth=1.5).encode(
        x=axis_x, y=axis_y, x2="x_target:Q", y2="y_target:Q",
        tooltip=[alt.Tooltip("source:N"), alt.Tooltip("target:N"),
                 alt.Tooltip("distance:Q", format=".3f", title="distance (z-scored geometry)")])
    dots = alt.Chart(points.to_pandas()).mark_circle(opacity=0.9, stroke="black", strokeWidth=0.5).encode(
        x=axis_x, y=axis_y,
        color=method_colour(points["method"].to_list()),
        size=alt.Size("target_sparsity:Q", title="target sparsity", scale=alt.Scale(domain=[0, 1], range=[60, 600])),
        tooltip=["model_id", "model", "method", alt.Tooltip("target_sparsity:Q", format=".0%", title="target sparsity")],
    ).add_params(pick)
    labels = alt.Chart(points.to_pandas()).mark_text(dy=-12, fontSize=10).encode(x=axis_x, y=axis_y, text="model:N")
    return (tree + dots + labels).properties(
        title="Models by the similarity of their per-sample geometry (minimum spanning tree in grey)",
        height=460)


def clustered_heatmap(matrix: pl.DataFrame, order: Sequence[str], *, legend: str, title: str, items: str,
                      row_field: str, column_field: str, domain: Sequence[float] = (-1, 1),
                      chance: Sequence[tuple[str, str]] = ()) -> alt.Chart | alt.LayerChart:
    """A symmetric similarity matrix (analysis.agreement.square_matrix: an `item` column and one column per
    item) in its clustered order, so near-duplicates form blocks. A click selects the row's and column's
    items under `row_field` / `column_field` (e.g. model_id and model_b); `items` names them on the axes.
    The pairs in `chance` (either order) are faded and carry a dot: their value is not different from
    chance (e.g. a kappa whose interval holds 0)."""
    long = matrix.unpivot(list(order), index="item", variable_name=column_field, value_name="value").rename(
        {"item": row_field})
    marked = {(a, b) for a, b in chance} | {(b, a) for a, b in chance}
    long = long.with_columns(pl.Series("chance", [(r, c) in marked for r, c in
                                                  zip(long[row_field], long[column_field], strict=True)],
                                       dtype=pl.Boolean))
    pick = alt.selection_point(name="pair", fields=[row_field, column_field], on="click")
    step = max(10, min(28, 480 // max(len(order), 1)))
    x = alt.X(f"{column_field}:N", sort=list(order), title=f"{items} (clustered order)",
              axis=alt.Axis(labelAngle=-50, labelLimit=160, labelOverlap=False))
    y = alt.Y(f"{row_field}:N", sort=list(order), title=f"{items} (clustered order)",
              axis=alt.Axis(labelLimit=160, labelOverlap=False))
    tooltip = [f"{row_field}:N", f"{column_field}:N", alt.Tooltip("value:Q", title=legend, format=".3f"),
               alt.Tooltip("chance:N", title="not different from chance")]
    base = alt.Chart(long.to_pandas())
    cells = base.mark_rect().encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("value:Q", title=legend, scale=alt.Scale(scheme="redblue", domain=list(domain), reverse=True),
                        legend=alt.Legend(titleLimit=400)),
        opacity=alt.condition("datum.chance", alt.value(FADED), alt.value(1.0)),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0)),
    ).add_params(pick)
    sized = {"width": alt.Step(step), "height": alt.Step(step)}
    if not marked:
        return cells.properties(title=title, **sized)
    dots = base.transform_filter("datum.chance").mark_point(shape="circle", filled=True, color="black", size=12).encode(
        x=x, y=y, tooltip=tooltip)
    return alt.layer(cells, dots).properties(title=title, **sized)


# -- local geometry --------------------------------------------------------------------------------------

def _short_lines(title: str, width: int = 22) -> list[str]:
    """An axis title as lines of about `width` characters: a facet is 140 px tall, and a longer rotated
    y title would run into the next row's."""
    return textwrap.wrap(title, width) or [title]


def _facet(chart: alt.Chart, title: str) -> alt.FacetChart:
    return chart.properties(width=150, height=140).facet(
        facet=alt.Facet("label_name:N", title=None, header=alt.Header(labelFontWeight="bold")),
        columns=FACET_COLUMNS, title=title)


def class_scatter(points: pl.DataFrame, *, x: str, y: str, x_title: str, y_title: str, title: str,
                  color: str = "correct", color_title: str = "correct") -> alt.FacetChart:
    """One scatter per class (small multiples on shared axes), one point per sample; a click selects the
    sample. `color` is `correct` (blue right, red wrong) or `change` (two models compared)."""
    scale = CORRECTNESS if color == "correct" else CHANGES
    pick = alt.selection_point(name="sample", fields=["sample_id"], on="click")
    extra = [c for c in points.columns if c not in ("sample_id", "label", "label_name", x, y, color)]
    chart = alt.Chart(points.to_pandas()).mark_circle(size=22, opacity=0.7).encode(
        x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=_short_lines(y_title), scale=alt.Scale(zero=False)),
        color=alt.Color(f"{color}:N", title=color_title, scale=scale),
        tooltip=["sample_id", "label_name", f"{color}:N",
                 *[alt.Tooltip(f"{c}:Q", format=".3f") for c in extra if points[c].dtype.is_float()]],
    ).add_params(pick)
    return _facet(chart, title)


def class_density(bins: pl.DataFrame, *, x_title: str, y_title: str, title: str) -> alt.FacetChart:
    """analysis.queries' per-class 2-D histograms (x_low..y_high, samples, accuracy) as heat maps on shared
    axes: colour is the number of samples (log scale), the tooltip gives the cell's accuracy."""
    chart = alt.Chart(bins.to_pandas()).mark_rect().encode(
        x=alt.X("x_low:Q", title=x_title, scale=alt.Scale(zero=False)), x2="x_high:Q",
        y=alt.Y("y_low:Q", title=_short_lines(y_title), scale=alt.Scale(zero=False)), y2="y_high:Q",
        color=alt.Color("samples:Q", title="samples", scale=alt.Scale(type="log", scheme="viridis")),
        tooltip=["label_name", alt.Tooltip("samples:Q"), alt.Tooltip("accuracy:Q", format=".2f"),
                 alt.Tooltip("x_low:Q", format=".2f", title=f"{x_title} from"),
                 alt.Tooltip("y_low:Q", format=".2f", title=f"{y_title} from")],
    )
    return _facet(chart, title)


# -- global geometry -------------------------------------------------------------------------------------

def _axis_labels(axes: Sequence[str]) -> str:
    """A Vega expression naming axis i."""
    names = ", ".join("'" + name.replace("'", "\\'") + "'" for name in axes)
    return f"[{names}][datum.value]"


def _axis_ends(frame: pl.DataFrame, axes: Sequence[str]) -> alt.LayerChart:
    """Each axis's range written at its ends, and the axis lines themselves."""
    ends = frame.unique("axis_index").select("axis_index", "axis", "low", "high")
    text = pl.concat([ends.select("axis_index", pl.lit(0.0).alias("y"), pl.col("low").alias("end")),
                      ends.select("axis_index", pl.lit(1.0).alias("y"), pl.col("high").alias("end"))])
    x = alt.X("axis_index:Q", title=None, scale=alt.Scale(domain=[0, len(axes) - 1]),
              axis=alt.Axis(values=list(range(len(axes))), labelExpr=_axis_labels(axes), labelAngle=-35,
                            grid=False, orient="top", labelLimit=150,
                            labelOverlap=False))
    rules = alt.Chart(ends.to_pandas()).mark_rule(color="#666").encode(x=x)
    labels = alt.Chart(text.to_pandas()).mark_text(dx=4, align="left", fontSize=10, color="#333").encode(
        x=x, y="y:Q", text=alt.Text("end:Q", format=".3~g"))
    return rules + labels


def parallel_lines(lines: pl.DataFrame, axes: Sequence[str], title: str) -> alt.LayerChart:
    """analysis.queries.parallel_lines as polylines over the axes, coloured by correctness (wrong drawn on
    top); each axis is scaled to its range (angles share one degree scale), written at its ends."""
    data = lines.with_columns(pl.col("correct").cast(pl.Boolean))
    y = alt.Y("scaled:Q", title="position on the axis (axis minimum to maximum)", axis=None,
              scale=alt.Scale(domain=[0, 1]))
    polylines = alt.Chart(data.to_pandas()).mark_line(opacity=0.35, strokeWidth=1).encode(
        x=alt.X("axis_index:Q"), y=y, detail="sample_id:N", order="axis_index:Q",
        color=alt.Color("correct:N", title="correct", scale=CORRECTNESS),
        tooltip=["sample_id", alt.Tooltip("label_name:N", title="true class"), "correct", "axis",
                 *([alt.Tooltip("axis_class_name:N", title="class of this axis")]
                   if "axis_class_name" in data.columns else []),
                 alt.Tooltip("value:Q", format=".3f")],
    )
    return (polylines + _axis_ends(data, axes)).properties(title=title, height=420)


def parallel_density(segments: pl.DataFrame, axes: Sequence[str], title: str) -> alt.LayerChart:
    """analysis.queries.parallel_density as density parallel coordinates: one segment per (bin on an axis,
    bin on the next), its opacity and width growing with the number of samples taking that path."""
    data = segments.with_columns((pl.col("axis_index") + 1).alias("next_index"),
                                 (pl.col("samples") / pl.col("samples").max()).alias("share"))
    paths = alt.Chart(data.to_pandas()).mark_rule().encode(
        x=alt.X("axis_index:Q"), x2="next_index:Q",
        y=alt.Y("scaled:Q", axis=None, scale=alt.Scale(domain=[0, 1]), title="position on the axis"),
        y2="scaled_next:Q",
        color=alt.Color("correct:N", title="correct", scale=CORRECTNESS),
        opacity=alt.Opacity("share:Q", legend=None, scale=alt.Scale(domain=[0, 1], range=[0.03, 0.9])),
        strokeWidth=alt.StrokeWidth("share:Q", legend=None, scale=alt.Scale(domain=[0, 1], range=[0.5, 4])),
        tooltip=["axis", "correct", alt.Tooltip("samples:Q", title="samples on this path")],
    )
    return (paths + _axis_ends(data, axes)).properties(title=title, height=420)


# -- samples ---------------------------------------------------------------------------------------------

def sample_matrix(rows: pl.DataFrame, columns: Sequence[str]) -> alt.Chart:
    """One sample under every model (rows) and setting (columns): colour is angle_true, a cross marks a
    wrong prediction. A click selects the model and setting."""
    data = with_model_label(rows).with_columns(
        setting_label(pl.col("corruption"), pl.col("severity")).alias("setting"),
        pl.when(pl.col("correct")).then(pl.lit("")).otherwise(pl.lit("✗")).alias("mark"))
    present = set(data["setting"].to_list())
    settings = [s for s in columns if s in present] + sorted(present - set(columns))
    order = data.unique("model", maintain_order=True)["model"].to_list()
    pick = alt.selection_point(name="cell", fields=["model_id", "corruption", "severity"], on="click")
    base = alt.Chart(data.to_pandas()).encode(
        x=alt.X("setting:N", sort=settings, title="corruption and severity",
                axis=alt.Axis(labelAngle=-50, orient="top", labelLimit=140, labelOverlap=False)),
        y=alt.Y("model:N", sort=order, title="model"),
        tooltip=["model_id", "corruption", "severity", alt.Tooltip("label_name:N", title="class"),
                 alt.Tooltip("pred_name:N", title="predicted"), "correct",
                 alt.Tooltip("angle_true:Q", format=".1f", title=f"angle_true ({DEGREES})"),
                 alt.Tooltip("feature_norm:Q", format=".3f"), alt.Tooltip("margin:Q", format=".3f"),
                 alt.Tooltip("confidence:Q", format=".3f")],
    )
    cells = base.mark_rect().encode(
        color=alt.Color("angle_true:Q", title=f"angle to true class ({DEGREES})",
                        scale=alt.Scale(scheme="inferno", reverse=True), legend=alt.Legend(orient="bottom", titleLimit=400)),
    ).add_params(pick)
    crosses = base.mark_text(color="white", fontSize=12, fontWeight="bold").encode(text="mark:N")
    return (cells + crosses).properties(title="This sample for every model: angle to its class (✗ = wrong)",
                                        height=alt.Step(22), width=alt.Step(30))


def png_data_uri(image: np.ndarray) -> str:
    """A uint8 (H, W, 3) image as a PNG data URI, for Vega image marks."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def attribution_maps(image: np.ndarray, maps: Mapping[str, np.ndarray], units: Mapping[str, str],
                     size: int = 200) -> alt.HConcatChart:
    """Occlusion attribution: per metric, how much covering each pixel changes it (occluded minus
    original; red raises, blue lowers), over the image itself."""
    height, width = image.shape[:2]
    background = pl.DataFrame({"url": [png_data_uri(image)], "x": [0.0], "y": [0.0]})
    x_scale = alt.Scale(domain=[0, width], nice=False)
    y_scale = alt.Scale(domain=[0, height], nice=False, reverse=True)
    panels = []
    for metric, heat in maps.items():
        rows, cols = np.indices(heat.shape)
        cells = pl.DataFrame({"x": cols.ravel().astype(float), "y": rows.ravel().astype(float),
                              "change": heat.ravel().astype(float)}).with_columns(
            (pl.col("x") + 1).alias("x2"), (pl.col("y") + 1).alias("y2"))
        bound = float(np.nanmax(np.abs(heat))) or 1.0
        picture = alt.Chart(background.to_pandas()).mark_image(width=size, height=size, align="left",
                                                                 baseline="top").encode(
            x=alt.X("x:Q", scale=x_scale, title="pixel column"), y=alt.Y("y:Q", scale=y_scale, title="pixel row"),
            url="url:N")
        overlay = alt.Chart(cells.to_pandas()).mark_rect(opacity=0.6, strokeWidth=0).encode(
            x=alt.X("x:Q", scale=x_scale), x2="x2:Q", y=alt.Y("y:Q", scale=y_scale), y2="y2:Q",
            color=alt.Color("change:Q", title=f"Δ {metric} ({units[metric]})",
                            scale=alt.Scale(scheme="redblue", domain=[-bound, bound], reverse=True),
                            legend=alt.Legend(orient="bottom", gradientLength=size - 40, titleLimit=size)),
            tooltip=[alt.Tooltip("x:Q", title="column"), alt.Tooltip("y:Q", title="row"),
                     alt.Tooltip("change:Q", format=".3f", title=f"Δ {metric} ({units[metric]})")])
        panels.append((picture + overlay).properties(width=size, height=size, title=f"Δ {metric}")
                      .resolve_scale(color="independent"))
    return alt.hconcat(*panels).resolve_scale(color="independent").properties(
        title="Occlusion attribution: change when a patch covers each pixel")


# -- embedding -------------------------------------------------------------------------------------------

def _category_colours(count: int) -> list[str]:
    """`count` distinct colours (tableau20, repeated when there are more)."""
    palette = ["#4c78a8", "#9ecae9", "#f58518", "#ffbf79", "#54a24b", "#88d27a", "#b79a20", "#f2cf5b", "#439894",
               "#83bcb6", "#e45756", "#ff9d98", "#79706e", "#bab0ac", "#d67195", "#fcbfd2", "#b279a2", "#d6a5c9",
               "#9e765f", "#d8b5a5"]
    return [palette[i % len(palette)] for i in range(count)]


def embedding_scatter(points: pl.DataFrame, color: str, title: str) -> alt.Chart:
    """Per-sample 2-D embedding coloured by `color` (label_name, correct or model_id); a click selects the
    sample (and its model)."""
    scale = CORRECTNESS if color == "correct" else alt.Undefined
    if color == "class":  # a few picked classes (views/embedding.py), every other one grey
        picked = sorted(set(points["class"].to_list()) - {OTHER_CLASSES})
        scale = alt.Scale(domain=[*picked, OTHER_CLASSES], range=[*_category_colours(len(picked)), "#d3d3d3"])
        points = points.sort(pl.col("class") != OTHER_CLASSES, maintain_order=True)  # grey drawn first, under
    pick = alt.selection_point(name="sample", fields=["sample_id", "model_id"], on="click")
    projection = (points["projection"][0] if points.height else "umap").upper()
    return alt.Chart(points.to_pandas()).mark_circle(size=30, opacity=0.7).encode(
        x=alt.X("x:Q", title=f"{projection} 1 (unitless)", scale=alt.Scale(zero=False),
                axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("y:Q", title=f"{projection} 2 (unitless)", scale=alt.Scale(zero=False),
                axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color(f"{color}:N", title=color.replace("_", " "), scale=scale, legend=alt.Legend(labelLimit=260, titleLimit=400)),
        tooltip=["sample_id", alt.Tooltip("label_name:N", title="class"), "correct", "model_id", "corruption",
                 "severity"],
    ).add_params(pick).properties(title=title, height=520)


# -- numbers with their uncertainty (analysis.uncertainty, analysis.predictors) ---------------------------------

FADED = 0.3  # opacity of a matrix cell whose drop vs reference is not significant


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


def predictor_scatter(points: pl.DataFrame, statistic: str, target: str, statistic_title: str,
                      target_title: str, title: str) -> alt.Chart:
    """One point per model: a geometric statistic (x) against a robustness figure (y), coloured by
    method; a click selects the model. `points` has model_id, method, target_sparsity, statistic, target."""
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    return alt.Chart(points.to_pandas()).mark_point(size=90, filled=True).encode(
        x=alt.X(f"{statistic}:Q", title=statistic_title, scale=alt.Scale(zero=False)),
        y=alt.Y(f"{target}:Q", title=target_title, scale=alt.Scale(zero=False)),
        color=method_colour(points["method"].to_list()),
        tooltip=["model_id", "method", alt.Tooltip("target_sparsity:Q", title="target sparsity", format=".0%"),
                 alt.Tooltip(f"{statistic}:Q", title=statistic_title, format=".3f"),
                 alt.Tooltip(f"{target}:Q", title=target_title, format=".3f")],
    ).add_params(pick).properties(title=title, height=360)


def group_accuracy_vs_sparsity(points: pl.DataFrame) -> alt.LayerChart:
    """accuracy_vs_sparsity per replicate group: the mean over seeds of clean and mean corruption accuracy
    against target sparsity, with the 95 % interval as an error bar, one line per method from the dense
    group. `points` has model_id (the group's first model: a click selects it), group_id, method,
    target_sparsity, seeds, images (clean / corrupted), accuracy, low, high."""
    dense = points.filter(pl.col("method") == "dense")
    methods = points.filter(pl.col("method") != "dense")["method"].unique(maintain_order=True)
    lines = pl.concat([points, *(dense.with_columns(pl.lit(m).alias("method")) for m in methods)])
    x = alt.X("target_sparsity:Q", title="target sparsity (fraction of zero weights)",
              scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%"))
    color = method_colour(lines["method"].to_list())
    dash = alt.StrokeDash("images:N", title="images", sort=["clean", "corrupted"])
    tooltip = ["group_id", "seeds", "method", "images", alt.Tooltip("target_sparsity:Q", format=".0%"),
               alt.Tooltip("accuracy:Q", title="mean accuracy", format=".4f"),
               alt.Tooltip("low:Q", title="95% low", format=".4f"), alt.Tooltip("high:Q", title="95% high", format=".4f")]
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    y = alt.Y("accuracy:Q", title="accuracy (mean over seeds)", scale=alt.Scale(zero=False))
    line = alt.Chart(lines.to_pandas()).mark_line(opacity=0.7).encode(x=x, y=y, color=color, strokeDash=dash)
    bars = alt.Chart(points.to_pandas()).mark_errorbar(ticks=True).encode(
        x=x, y=alt.Y("low:Q", title="accuracy (mean over seeds)"), y2="high:Q", color=color, tooltip=tooltip)
    dots = alt.Chart(points.to_pandas()).mark_point(size=80, filled=True).encode(
        x=x, y=y, color=color, shape=alt.Shape("images:N", title="images", sort=["clean", "corrupted"]),
        tooltip=tooltip).add_params(pick)
    return (line + bars + dots).properties(
        title="Accuracy vs sparsity per group (mean over seeds, 95% interval; clean and mean corruption)", height=340)


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
