"""The local and global geometry pages' charts: per-class scatter plots and 2-D histograms (local), and
parallel coordinates over the geometry axes, as lines or as density (global)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import altair as alt
import polars as pl

from dashboard.charts.palette import CHANGES, CORRECTNESS

FACET_COLUMNS = 4  # with the legend below, four panels fit beside the sidebar at 1280 px


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
        color=alt.Color(f"{color}:N", title=color_title, scale=scale, legend=alt.Legend(orient="bottom")),
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
        color=alt.Color("samples:Q", title="samples", scale=alt.Scale(type="log", scheme="viridis"),
                        legend=alt.Legend(orient="bottom")),
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
