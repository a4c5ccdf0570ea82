"""The embedding page's chart: every sample at its 2-D embedding."""

from __future__ import annotations

import altair as alt
import polars as pl

from dashboard.charts.common import OTHER_CLASSES
from dashboard.charts.palette import CORRECTNESS


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
