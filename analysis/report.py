"""The paper table: rows (replicate groups or models) x columns (clean, each corruption, mean
corruption, relative mCE) with 95 % intervals, and its text as markdown, CSV or LaTeX
(`python -m compute report`, the matrix page's download)."""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis import stats
from analysis.matrices import model_summary
from analysis.uncertainty import LEVELS
from store.catalog import Catalog


def _per_model_columns(catalog: Catalog) -> pl.DataFrame:
    """Per (model, column): pooled correct and samples, where a column is `clean`, each corruption (its
    severities pooled, so the accuracy is their mean when each holds the same samples) or `mean
    corruption` (every corrupted setting pooled); plus the model's relative mCE as column `relative mCE`."""
    return catalog.query("""
        WITH cells AS (
            SELECT ps.model_id, ps.corruption, ps.correct, ps.rows FROM partition_summary ps
        ),
        columns AS (
            SELECT model_id, corruption AS column_name, sum(correct)::BIGINT AS correct, sum(rows)::BIGINT AS samples
            FROM cells GROUP BY ALL
            UNION ALL
            SELECT model_id, 'mean corruption', sum(correct)::BIGINT, sum(rows)::BIGINT
            FROM cells WHERE corruption <> 'clean' GROUP BY ALL
        )
        SELECT c.model_id, m.group_id, m.method, m.target_sparsity, m.seed, c.column_name,
               c.correct, c.samples
        FROM columns c JOIN models m USING (model_id)
    """)  # noqa: S608 (constant SQL)


def report_table(catalog: Catalog, level: str = "group") -> pl.DataFrame:
    """The paper table, long: one row per (row, column) with mean, low, high (95 %).

    A row is a group (level "group": mean over its seeds, Student t interval across seeds; one seed: the
    model's Wilson interval) or a model (Wilson interval over its pooled samples). Columns: `clean`, every
    corruption (mean over its severities), `mean corruption` (mean over every corrupted setting) and
    `relative mCE` (analysis.matrices.model_summary; a model has no interval for it). Ordered as the matrix.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of: {', '.join(LEVELS)}")
    per_model = _per_model_columns(catalog)
    low, high = stats.wilson_interval(per_model["correct"].to_numpy(), per_model["samples"].to_numpy())
    per_model = per_model.with_columns(
        (pl.col("correct") / pl.col("samples")).alias("mean"), pl.Series("low", low), pl.Series("high", high))
    mce = model_summary(catalog).select("model_id", pl.col("relative_mce").alias("mean")).join(
        per_model.select("model_id", "group_id", "method", "target_sparsity", "seed").unique("model_id"),
        on="model_id").with_columns(pl.lit("relative mCE").alias("column_name"),
                                    pl.lit(None, pl.Float64).alias("low"), pl.lit(None, pl.Float64).alias("high"))
    keys = ["model_id", "group_id", "method", "target_sparsity", "seed", "column_name", "mean", "low", "high"]
    per_model = pl.concat([per_model.select(keys), mce.select(keys)])
    if level == "model":
        table = per_model.rename({"model_id": "row"}).with_columns(pl.lit(1).alias("seeds"))
    else:
        table = per_model.group_by("group_id", "method", "target_sparsity", "column_name").agg(
            pl.len().alias("seeds"), pl.col("mean").count().alias("values"), pl.col("mean").std().alias("std"),
            pl.col("mean").mean(),
            pl.col("low").first().alias("single_low"), pl.col("high").first().alias("single_high"))
        # A seed without a value (a null relative mCE) does not count towards the interval.
        half = stats.t_half_width(table["std"].fill_null(0).to_numpy(), table["values"].to_numpy())
        several = table["values"].to_numpy() > 1
        mean = table["mean"].fill_null(np.nan).to_numpy()
        table = table.with_columns(
            pl.Series("low", np.where(several, mean - half, table["single_low"].fill_null(np.nan).to_numpy())),
            pl.Series("high", np.where(several, mean + half, table["single_high"].fill_null(np.nan).to_numpy())),
        ).with_columns(pl.col("low", "high").fill_nan(None)).rename({"group_id": "row"})
        accuracy = pl.col("column_name") != "relative mCE"  # an accuracy interval ends at 0 and 1
        table = table.with_columns(pl.when(accuracy).then(pl.col(c).clip(0, 1)).otherwise(pl.col(c)).alias(c)
                                   for c in ("low", "high"))
    names = ["clean", *catalog.manifest["corruptions"], "mean corruption", "relative mCE"]
    order = {name: i for i, name in enumerate(names)}
    return table.with_columns(
        pl.col("column_name").replace_strict(order, default=len(order)).alias("column_index"),
        (pl.col("method") != "dense").alias("pruned"),
    ).sort("pruned", "method", "target_sparsity", "row", "column_index").select(
        "row", "method", "target_sparsity", "seeds", "column_name", "mean", "low", "high")


def report_wide(table: pl.DataFrame, digits: int = 3) -> pl.DataFrame:
    """report_table as the printed table: one row per row, one text column per column, each cell
    "mean ± half the interval's width" (just the mean where there is no interval)."""
    def text(mean: float | None, low: float | None, high: float | None) -> str:
        if mean is None:
            return "–"
        if low is None or high is None:
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"

    cells = table.with_columns(pl.struct("mean", "low", "high").map_elements(
        lambda c: text(c["mean"], c["low"], c["high"]), return_dtype=pl.String).alias("text"))
    columns = list(dict.fromkeys(cells["column_name"].to_list()))
    wide = cells.pivot("column_name", index=["row", "method", "target_sparsity", "seeds"], values="text",
                       aggregate_function="first", maintain_order=True)
    return wide.select("row", "method", "target_sparsity", "seeds", *[c for c in columns if c in wide.columns])


REPORT_FORMATS: tuple[str, ...] = ("markdown", "csv", "latex")


def _markdown(wide: pl.DataFrame) -> str:
    header = "| " + " | ".join(wide.columns) + " |"
    rule = "|" + "|".join("---" for _ in wide.columns) + "|"
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in wide.iter_rows()]
    return "\n".join([header, rule, *rows]) + "\n"


def _latex(wide: pl.DataFrame) -> str:
    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text.replace("_", r"\_").replace("±", r"$\pm$").replace("–", "--")

    lines = [r"\begin{tabular}{" + "l" * 2 + "r" * (len(wide.columns) - 2) + "}", r"\toprule",
             " & ".join(cell(c) for c in wide.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in wide.iter_rows()]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_report(table: pl.DataFrame, fmt: str) -> str:
    """report_table as text: csv keeps the numbers (mean, low, high per cell, one line each); markdown (a
    GitHub table) and latex (a booktabs tabular) print report_wide's "mean ± half-width" cells."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(REPORT_FORMATS)}")
    if fmt == "csv":
        return table.write_csv()
    wide = report_wide(table).with_columns(pl.col("target_sparsity").round(4))
    return _markdown(wide) if fmt == "markdown" else _latex(wide)


