"""Charts as pure functions: Polars frame in, Altair chart out (testable without Streamlit)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl


def model_label(frame: pl.DataFrame) -> pl.Expr:
    """'method 80%' (or 'dense'), plus the model id when a method has several models at one sparsity."""
    return (pl.when(pl.col("method") == "dense").then(pl.lit("dense"))
            .otherwise(pl.col("method") + pl.lit(" ") + (pl.col("target_sparsity") * 100).round(0)
                       .cast(pl.Int64).cast(pl.String) + pl.lit("%")))


def accuracy_vs_sparsity(models: pl.DataFrame) -> alt.Chart:
    """Clean accuracy against measured sparsity, one line per method."""
    data = models.select("model_id", "method", "sparsity", "target_sparsity", "clean_accuracy")
    base = alt.Chart(data.to_pandas()).encode(
        x=alt.X("sparsity:Q", title="measured sparsity (fraction of zero weights)",
                scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("clean_accuracy:Q", title="clean accuracy", scale=alt.Scale(zero=False)),
        color=alt.Color("method:N", title="method"),
        tooltip=["model_id", "method", alt.Tooltip("sparsity:Q", format=".3f"),
                 alt.Tooltip("clean_accuracy:Q", format=".4f", title="clean accuracy")],
    )
    return (base.mark_line() + base.mark_point(size=80, filled=True)).properties(
        title="Clean accuracy vs sparsity", height=320)


def accuracy_heatmap(matrix: pl.DataFrame, corruption_order: Sequence[str]) -> alt.Chart:
    """Model (rows) by corruption x severity (columns) heat map of accuracy; cells are selectable.

    `corruption_order` is the store's canonical order (its manifest), so columns read like the benchmark.
    """
    data = matrix.with_columns(model_label(matrix).alias("model"),
                               (pl.col("corruption") + pl.lit(" s") + pl.col("severity").cast(pl.String))
                               .alias("setting"))
    order = ["clean s0"] + [f"{name} s{s}" for name in corruption_order for s in range(1, 6)]
    present = set(data["setting"].to_list())
    settings = [s for s in order if s in present] + sorted(present - set(order))
    models_order = data.unique("model_id", maintain_order=True)["model"].to_list()
    cell = alt.selection_point(name="cell", fields=["model_id", "corruption", "severity"])
    return alt.Chart(data.to_pandas()).mark_rect().encode(
        x=alt.X("setting:N", sort=settings, title="corruption and severity",
                axis=alt.Axis(labelAngle=-60, labelLimit=140)),
        y=alt.Y("model:N", sort=models_order, title="model (method, target sparsity)"),
        color=alt.Color("accuracy:Q", title="accuracy", scale=alt.Scale(scheme="viridis", domain=[0, 1])),
        opacity=alt.condition(cell, alt.value(1.0), alt.value(0.5)),
        tooltip=["model_id", "corruption", "severity", alt.Tooltip("accuracy:Q", format=".3f"), "samples"],
    ).add_params(cell).properties(title="Accuracy by model and corruption", height=alt.Step(28))
