"""The similarity page's charts: the map of models and the clustered similarity matrices."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

from dashboard.charts.common import FADED, with_model_label
from dashboard.charts.palette import method_colour


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
