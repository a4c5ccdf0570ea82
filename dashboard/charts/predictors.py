"""The predictors page's chart: a geometric statistic against a robustness figure, one point per model."""

from __future__ import annotations

import altair as alt
import polars as pl

from dashboard.charts.palette import method_colour


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
