"""What the charts of several pages share: units, limits and the labels of models and settings."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from store.vocabulary import QUANTIZATIONS, TARGET_UNITS, UNPRUNED

DEGREES = "°"
OTHER_CLASSES = "other classes"  # the grey of the classes not picked, on studies with many classes
MAX_MARKS = 5000  # above this many samples a chart gets aggregates from DuckDB, not one mark per sample
BINS = 24  # grid size of the 2-D histograms that replace scatter plots on large studies
FADED = 0.3  # opacity of a matrix cell whose drop vs reference is not significant


def model_labels(frame: pl.DataFrame) -> pl.Series:
    """'method 90%' per row ('channels 50%' where the target counts channels; 'dense'; a quantization by its
    operation, 'int8'); where two models would read alike, the model id is added."""
    target = (pl.col("target_sparsity") * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")
    short = (pl.when(pl.col("method") == UNPRUNED).then(pl.lit(UNPRUNED))
             .when(pl.col("method").is_in(QUANTIZATIONS)).then(pl.col("method"))  # an operation, not "int8 0%"
             .otherwise(pl.col("method").fill_null("?").replace(TARGET_UNITS) + pl.lit(" ")
                        + target.fill_null("?%")))  # a damaged card (the catalog names it): "?"
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
