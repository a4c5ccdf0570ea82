"""The paper table: rows (replicate groups or models) x columns with 95 % intervals and a paired test
against each model's reference, and its text as markdown, CSV or LaTeX (`python -m compute report`, the matrix
page's download).

Columns (COLUMN_SETS picks which are printed):
    clean, each corruption   accuracy (a corruption's severities pooled)
    each family              accuracy over the family's corruptions (Hendrycks & Dietterich 2019's noise,
                             blur, weather, digital: store.vocabulary)
    mean corruption          accuracy over every corrupted setting
    mean corruption error    1 - mean corruption accuracy: the unnormalised mCE
    accuracy drop            clean - mean corruption accuracy: what corruption costs the model
    relative mCE             analysis.matrices.model_summary's relative mCE (normalised by each model's
                             reference; corruptions that barely hurt the reference are left out, and
                             `report_notes` says which)
Intervals: a model's accuracy has the Wilson interval over its pooled samples (its accuracy drop
Newcombe's interval for independent samples; its relative mCE none); a group's figures are the mean over
its seeds with a Student t interval across them (one seed: the model's interval). Accuracy intervals are
clipped to [0, 1]. Each accuracy cell of a pruned row is tested against its reference on the same
samples (uncertainty.model_statistics / group_statistics: McNemar, or the hierarchical bootstrap over
seeds), Holm-adjusted over the cells printed.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from analysis import escape, stats, uncertainty
from analysis.matrices import MIN_REFERENCE_RISE, model_summary
from store.catalog import Catalog
from store.vocabulary import CORRUPTIONS, FAMILY_NAMES, LEVELS, MODEL_SORT, UNPRUNED

OTHER = "other"  # the family column of a corruption the vocabulary does not know
MEAN, ERROR, DROP, RELATIVE = "mean corruption", "mean corruption error", "accuracy drop", "relative mCE"
# Column -> its printed LaTeX header.
SUMMARY_HEADERS: dict[str, str] = {"clean": "Clean", MEAN: "Corr.", ERROR: "Err.", DROP: "Drop",
                                   RELATIVE: "mCE$_\\mathrm{rel}$"}
COLUMN_SETS: tuple[str, ...] = ("full", "summary")
REPORT_FORMATS: tuple[str, ...] = ("markdown", "csv", "latex")
ALPHA = 0.05


def family_column(family: str) -> str:
    return f"{family} (family)"


def _family(corruption: str) -> str:
    return CORRUPTIONS[corruption].family if corruption in CORRUPTIONS else OTHER


def _accuracy_counts(catalog: Catalog) -> pl.DataFrame:
    """paired_counts summed per (model, column): `corruption` holds the column (clean, each corruption,
    its family, mean corruption), `severity` is 0."""
    counts = uncertainty.paired_counts(catalog)
    corrupted = counts.filter(pl.col("corruption") != "clean")
    parts = [counts.filter(pl.col("corruption") == "clean"), corrupted,
             corrupted.with_columns(pl.col("corruption").map_elements(lambda c: family_column(_family(c)),
                                                                      return_dtype=pl.String)),
             corrupted.with_columns(pl.lit(MEAN).alias("corruption"))]
    keys = ["model_id", "group_id", "arch", "method", "target_sparsity", "seed", "reference_model_id", "corruption"]
    sums = ["samples", "correct", "paired", "both_right", "only_model", "only_reference", "neither_right"]
    return pl.concat(parts).group_by(keys, maintain_order=True).agg(pl.col(sums).sum()).with_columns(
        pl.lit(0, counts.schema["severity"]).alias("severity"))


def _over_seeds(per_model: pl.DataFrame) -> pl.DataFrame:
    """Per (group, column): the mean of the models' values with a Student t interval across them (one value:
    that model's own low/high). A model without a value does not count."""
    table = per_model.group_by("group_id", "method", "target_sparsity", "column_name", maintain_order=True).agg(
        pl.len().alias("seeds"), pl.col("mean").count().alias("values"), pl.col("mean").std().alias("std"),
        pl.col("mean").mean(), pl.col("low").first().alias("single_low"), pl.col("high").first().alias("single_high"))
    half = stats.t_half_width(table["std"].fill_null(0).to_numpy(), table["values"].to_numpy())
    several = table["values"].to_numpy() > 1
    mean = table["mean"].fill_null(np.nan).to_numpy()
    return table.with_columns(
        pl.Series("low", np.where(several, mean - half, table["single_low"].fill_null(np.nan).to_numpy())),
        pl.Series("high", np.where(several, mean + half, table["single_high"].fill_null(np.nan).to_numpy())),
    ).with_columns(pl.col("low", "high").fill_nan(None)).rename({"group_id": "row"})


def report_table(catalog: Catalog, level: str = "group") -> pl.DataFrame:
    """The paper table, long: one row per (row, column) with mean, low, high (95 %) and p_value (the test
    against the model's reference; null for rows without one and the derived columns). Ordered as the matrix."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of: {', '.join(LEVELS)}")
    cells = uncertainty.model_statistics(_accuracy_counts(catalog))
    meta = ["model_id", "group_id", "method", "target_sparsity", "seed"]
    accuracy = cells.select(*meta, pl.col("corruption").alias("column_name"), pl.col("accuracy").alias("mean"),
                            pl.col("accuracy_low").alias("low"), pl.col("accuracy_high").alias("high"))
    clean = cells.filter(pl.col("corruption") == "clean")
    corrupt = cells.filter(pl.col("corruption") == MEAN).join(
        clean.select("model_id", pl.col("correct").alias("k_clean"), pl.col("samples").alias("n_clean")),
        on="model_id")
    drop, drop_low, drop_high = stats.difference_interval(corrupt["k_clean"].to_numpy(), corrupt["n_clean"].to_numpy(),
                                                          corrupt["correct"].to_numpy(), corrupt["samples"].to_numpy())
    drops = corrupt.select(*meta).with_columns(pl.lit(DROP).alias("column_name"), pl.Series("mean", drop),
                                               pl.Series("low", drop_low), pl.Series("high", drop_high))
    mce = model_summary(catalog).select("model_id", pl.col("relative_mce").alias("mean")).join(
        clean.select(meta), on="model_id").with_columns(
        pl.lit(RELATIVE).alias("column_name"), pl.lit(None, pl.Float64).alias("low"), pl.lit(None, pl.Float64).alias("high"))
    keys = [*meta, "column_name", "mean", "low", "high"]
    per_model = pl.concat([accuracy.select(keys), drops.select(keys), mce.select(keys)]).with_columns(
        pl.col("mean", "low", "high").cast(pl.Float64).fill_nan(None))
    if level == "model":
        table = per_model.rename({"model_id": "row"}).with_columns(pl.lit(1, pl.UInt32).alias("seeds"))
        tests = cells.select(pl.col("model_id").alias("row"), pl.col("corruption").alias("column_name"), "p_value")
    else:
        table = _over_seeds(per_model)
        is_accuracy = ~pl.col("column_name").is_in([DROP, RELATIVE])
        table = table.with_columns(pl.when(is_accuracy).then(pl.col(c).clip(0, 1)).otherwise(pl.col(c)).alias(c)
                                   for c in ("low", "high"))
        tests = uncertainty.group_statistics(cells).select(pl.col("group_id").alias("row"),
                                                           pl.col("corruption").alias("column_name"), "p_value")
    table = table.join(tests, on=["row", "column_name"], how="left")
    error = table.filter(pl.col("column_name") == MEAN).with_columns(
        pl.lit(ERROR).alias("column_name"), (1 - pl.col("mean")).alias("mean"), (1 - pl.col("high")).alias("low"),
        (1 - pl.col("low")).alias("high"))
    table = pl.concat([table.select(error.columns), error])
    present = catalog.manifest["corruptions"]
    families = [family_column(f) for f in (*FAMILY_NAMES, OTHER) if any(_family(c) == f for c in present)]
    order = {name: i for i, name in enumerate(["clean", *present, *families, MEAN, ERROR, DROP, RELATIVE])}
    return table.with_columns(
        pl.col("column_name").replace_strict(order, default=len(order)).alias("column_index"),
        (pl.col("method") != UNPRUNED).alias("pruned"),
    ).sort("pruned", *MODEL_SORT, "row", "column_index").select(
        "row", "method", "target_sparsity", "seeds", "column_name", "mean", "low", "high", "p_value")


def report_notes(catalog: Catalog) -> list[str]:
    """What the table's relative mCE is normalised by and which corruptions it leaves out, and why."""
    summary = model_summary(catalog)
    notes = ["relative mCE: Hendrycks & Dietterich's relative mCE with each model's reference (its base, or "
             "the chosen reference) as the baseline instead of AlexNet: per corruption, the rise of the model's "
             "error over its clean error divided by the reference's, averaged over corruptions whose reference "
             f"error rises by at least {MIN_REFERENCE_RISE} (a smaller denominator makes the ratio explode)"]
    left_out = summary.select("model_id", "relative_mce_left_out").explode("relative_mce_left_out").drop_nulls()
    for corruption, models in left_out.group_by("relative_mce_left_out", maintain_order=True).agg(pl.len()).rows():
        notes.append(f"left out of relative mCE: {corruption} for {models} of {summary.height} models (the "
                     f"reference's error rises by less than {MIN_REFERENCE_RISE})")
    return notes


def select_columns(table: pl.DataFrame, columns: str = "full") -> pl.DataFrame:
    """The columns one of COLUMN_SETS prints: full (clean, each corruption, mean corruption, mean
    corruption error, accuracy drop, relative mCE) or summary (clean, mean corruption, relative mCE, each
    family), so that a summary fits one column of a two-column paper."""
    if columns not in COLUMN_SETS:
        raise ValueError(f"unknown column set {columns!r}; choose one of: {', '.join(COLUMN_SETS)}")
    is_family = pl.col("column_name").str.ends_with(" (family)")
    if columns == "full":
        return table.filter(~is_family)
    summary = table.filter(is_family | pl.col("column_name").is_in(["clean", MEAN, RELATIVE]))
    rows = {row: i for i, row in enumerate(dict.fromkeys(summary["row"].to_list()))}
    first = {"clean": 0, MEAN: 1, RELATIVE: 2}
    return summary.with_columns(pl.col("row").replace_strict(rows).alias("_row"),
                                pl.col("column_name").replace_strict(first, default=3).alias("_column")).sort(
        "_row", "_column", maintain_order=True).drop("_row", "_column")


def with_marks(table: pl.DataFrame) -> pl.DataFrame:
    """Adds p_adjusted (Holm over the tested cells given), `significant` (p_adjusted < ALPHA) and `best`
    (the best mean of its column: highest accuracy, lowest error, drop or relative mCE)."""
    marked = uncertainty.with_significance(table, "holm", ALPHA)
    best = marked.group_by("column_name").agg(pl.col("mean").max().alias("_max"), pl.col("mean").min().alias("_min"))
    return marked.join(best, on="column_name", how="left", maintain_order="left").with_columns(
        (pl.col("mean") == pl.when(pl.col("column_name").is_in([ERROR, DROP, RELATIVE])).then("_min")
         .otherwise("_max")).fill_null(False).alias("best")).drop("_max", "_min")


def _fraction_text(mean: float | None, low: float | None, high: float | None, digits: int = 3,
                   bold: bool = False) -> str:
    """"mean [low, high]" (just the mean without an interval, "–" without a mean); `bold` marks the mean
    as Markdown bold."""
    if mean is None:
        return "–"
    text = f"**{mean:.{digits}f}**" if bold else f"{mean:.{digits}f}"
    if low is None or high is None:
        return text
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def report_wide(table: pl.DataFrame, digits: int = 3) -> pl.DataFrame:
    """report_table as the printed table: one row per row, one text column per column, each cell
    "mean [low, high]" (just the mean where there is no interval)."""
    cells = table.with_columns(pl.struct("mean", "low", "high").map_elements(
        lambda c: _fraction_text(c["mean"], c["low"], c["high"], digits), return_dtype=pl.String).alias("text"))
    columns = list(dict.fromkeys(cells["column_name"].to_list()))
    wide = cells.pivot("column_name", index=["row", "method", "target_sparsity", "seeds"], values="text",
                       aggregate_function="first", maintain_order=True)
    return wide.select("row", "method", "target_sparsity", "seeds", *[c for c in columns if c in wide.columns])


def _header(column: str) -> str:
    """A column's printed LaTeX header: a literature abbreviation, the family's name or a short label."""
    if column in SUMMARY_HEADERS:
        return SUMMARY_HEADERS[column]
    if column.endswith(" (family)"):
        return escape.latex(column.removesuffix(" (family)").capitalize())
    return escape.latex(CORRUPTIONS[column].abbreviation if column in CORRUPTIONS else column)


def _row_label(row: dict, level: str) -> str:
    if level == "model":
        return escape.latex(row["row"])
    sparsity = row["target_sparsity"]  # null on a damaged card (the catalog names it): "?"
    return escape.latex(f"{row['method']} {'?' if sparsity is None else format(sparsity * 100, 'g')}") + r"\,\%"


def _latex_cells(cell: dict | None, digits: int) -> tuple[str, str]:
    """One cell as two lines of the table: the mean in % (bold when best, * when it differs from the
    reference) and, below it in small type, its interval low--high (asymmetric, already clipped), rounded
    outwards to `digits` decimals so that rounding never narrows it."""
    if cell is None or cell["mean"] is None:
        return "--", ""
    text = f"{cell['mean'] * 100:.1f}"
    if cell["best"]:
        text = rf"\textbf{{{text}}}"
    if cell["significant"]:
        text += r"$^{\ast}$"
    if cell["low"] is None or cell["high"] is None:
        return text, ""
    scale = 10 ** digits
    low, high = math.floor(cell["low"] * 100 * scale) / scale, math.ceil(cell["high"] * 100 * scale) / scale
    return text, rf"{{\tiny {low:.{digits}f}--{high:.{digits}f}}}"


def _latex(table: pl.DataFrame, level: str, columns: str, notes: list[str]) -> str:
    marked = with_marks(table)
    names = list(dict.fromkeys(marked["column_name"].to_list()))
    rows = list(dict.fromkeys(marked["row"].to_list()))
    by_cell = {(c["row"], c["column_name"]): c for c in marked.iter_rows(named=True)}
    first = {r["row"]: r for r in marked.iter_rows(named=True)}
    environment = "table" if columns == "summary" else "table*"
    digits = 0 if columns == "summary" else 1  # whole percents keep the summary one column wide
    abbreviations = [f"{CORRUPTIONS[c].abbreviation} = {c.replace('_', ' ')}" for c in names if c in CORRUPTIONS]
    interval = ("mean over seeds with its 95\\,\\% Student $t$ interval across seeds (one seed: Wilson "
                "interval over the test samples)" if level == "group" else
                "95\\,\\% Wilson interval over the test samples (accuracy drop: Newcombe's hybrid score interval)")
    rounding = " in whole percents rounded outwards" if digits == 0 else ""
    caption = (f"Robustness of pruned models (all figures in \\%): {interval}, shown below the mean as "
               f"low--high{rounding}, accuracy intervals clipped to [0, 100]. Bold: best in the column. $^{{\\ast}}$: "
               "differs from its reference (its base model) on the same samples (paired test, Holm-adjusted $p < 0.05$ over the "
               "cells shown). "
               + ("Err.: mean corruption error (unnormalised mCE); Drop: clean minus mean corruption accuracy. "
                  if columns == "full" else "Corr.: mean corruption accuracy; families: Hendrycks \\& Dietterich "
                  "(2019). ")
               + "mCE$_\\mathrm{rel}$: relative mCE, against each model's reference (see note).")
    spec = "l" + "r" * len(names)
    lines = ["% prunescope report (python -m compute report). Needs \\usepackage{booktabs} and "
             "\\usepackage{graphicx} in the preamble.",
             f"\\begin{{{environment}}}[t]", "\\centering", "\\scriptsize", "\\setlength{\\tabcolsep}{1.5pt}",
             f"\\caption{{{caption}}}", "\\label{tab:prunescope}"]
    # shrink only when wider than the page (table*) or the column (summary); never enlarge
    width = "\\columnwidth" if columns == "summary" else "\\textwidth"
    lines.append(f"\\resizebox{{\\ifdim\\width>{width}{width}\\else\\width\\fi}}{{!}}{{%")
    lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
              " & ".join(["Model" if level == "model" else "Method",
                          *(_header(n) for n in names)]) + r" \\", "\\midrule"]
    for row in rows:
        means, intervals = zip(*(_latex_cells(by_cell.get((row, n)), digits) for n in names), strict=True)
        seeds = first[row]["seeds"]
        lines.append(" & ".join([_row_label(first[row], level), *means]) + r" \\")
        lines.append(" & ".join([rf"{{\tiny {seeds} seed{'s' if seeds > 1 else ''}}}" if level == "group" else "",
                                 *intervals]) + r" \\[1pt]")
    lines += ["\\bottomrule", "\\end{tabular}", "}"]
    legend = ([", ".join(abbreviations) + "."] if abbreviations else []) + [escape.latex(n) + "." for n in notes]
    if legend:
        lines += ["\\par\\smallskip", "\\parbox{\\linewidth}{\\tiny " + " ".join(legend) + "}"]
    lines.append(f"\\end{{{environment}}}")
    return "\n".join(lines) + "\n"


def _markdown(table: pl.DataFrame, notes: list[str]) -> str:
    marked = with_marks(table).with_columns(pl.struct("mean", "low", "high", "best", "significant").map_elements(
        lambda c: _fraction_text(c["mean"], c["low"], c["high"], bold=c["best"]) + (" †" if c["significant"] else ""),
        return_dtype=pl.String).alias("text"))
    columns = list(dict.fromkeys(marked["column_name"].to_list()))
    wide = marked.pivot("column_name", index=["row", "method", "target_sparsity", "seeds"], values="text",
                        aggregate_function="first", maintain_order=True).with_columns(pl.col("target_sparsity").round(4))
    wide = wide.select("row", "method", "target_sparsity", "seeds", *[c for c in columns if c in wide.columns])
    header = "| " + " | ".join(escape.markdown_cell(c) for c in wide.columns) + " |"
    rule = "|" + "|".join("---" for _ in wide.columns) + "|"
    rows = ["| " + " | ".join("" if v is None else escape.markdown_cell(v) for v in row) + " |"
            for row in wide.iter_rows()]
    footer = ["", "Cells: mean [95 % interval]; **bold**: best in the column; †: differs from the reference "
              "on the same samples (paired test, Holm-adjusted p < 0.05 over the cells shown).",
              *(f"- {escape.markdown_cell(note)}" for note in notes)]
    return "\n".join([header, rule, *rows, *footer]) + "\n"


def render_report(table: pl.DataFrame, fmt: str, *, level: str = "group", columns: str = "full",
                  notes: list[str] | None = None) -> str:
    """report_table (rows at `level`) as text with one of COLUMN_SETS: csv keeps the numbers (mean, low,
    high, p_value per cell, one line each, text cells made inert); markdown (a GitHub table with a legend)
    and latex (a booktabs table or table* with caption, legend and `notes`) print the marked cells."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(REPORT_FORMATS)}")
    shown = select_columns(table, columns)
    if fmt == "csv":
        return escape.csv(shown)
    return _markdown(shown, notes or []) if fmt == "markdown" else _latex(shown, level, columns, notes or [])
