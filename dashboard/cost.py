"""Robustness against what a model costs: corruption accuracy against the bytes of its file and its CPU
latency per image (the model card's footprint, compute.footprint). A pure function of a frame, as
dashboard.charts; the Overview draws it."""

from __future__ import annotations

import altair as alt
import polars as pl

COSTS = {  # model card column -> axis title
    "file_bytes": "file size (bytes)",
    "latency_ms_batch1": "CPU ms per image, batch 1",
    "latency_ms_batch256": "CPU ms per image, batch 256",
}


def has_costs(models: pl.DataFrame) -> bool:
    """Whether any model of the frame has a measured footprint (stores extracted before it have none)."""
    return all(column in models.columns for column in COSTS) and models["file_bytes"].is_not_null().any()


def robustness_vs_cost(frame: pl.DataFrame) -> alt.FacetChart:
    """Mean corruption accuracy (and clean accuracy, hollow) against each cost on a log axis, one panel
    per cost, one colour per method; a click selects the model (field model_id, dashboard.linking).

    `frame` has model_id, method, clean_accuracy, corruption_accuracy and the COSTS columns; models
    without a measured cost are left out of that panel."""
    long = (frame.select("model_id", "method", "clean_accuracy", "corruption_accuracy",
                         *(pl.col(c).cast(pl.Float64) for c in COSTS))
            .unpivot(list(COSTS), index=["model_id", "method", "clean_accuracy", "corruption_accuracy"],
                     variable_name="cost", value_name="value")
            .drop_nulls("value").filter(pl.col("value") > 0)
            .with_columns(pl.col("cost").replace_strict(COSTS)))
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    base = alt.Chart().encode(
        x=alt.X("value:Q", title=None, scale=alt.Scale(type="log")),
        color=alt.Color("method:N", title="method"),
        tooltip=["model_id", "method", "cost", alt.Tooltip("value:Q", format=",.3~f", title="cost"),
                 alt.Tooltip("corruption_accuracy:Q", format=".4f"), alt.Tooltip("clean_accuracy:Q", format=".4f")])
    corrupted = base.mark_point(size=90, filled=True).encode(
        y=alt.Y("corruption_accuracy:Q", title="accuracy (filled: corrupted mean, hollow: clean)",
                scale=alt.Scale(zero=False))).add_params(pick)
    clean = base.mark_point(size=60, filled=False).encode(y=alt.Y("clean_accuracy:Q"))
    return (alt.layer(corrupted, clean, data=long.to_pandas())
            .facet(column=alt.Column("cost:N", title=None, sort=list(COSTS.values())))
            .resolve_scale(x="independent")
            .properties(title="Robustness vs size and CPU latency (log scales)"))
