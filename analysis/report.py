"""The paper table: rows (replicate groups or models) x columns with 95 % intervals and a paired test
against each model's reference, and its text as markdown, CSV or LaTeX (`python -m compute report`, the matrix
page's download).

Columns (COLUMN_GROUPS name which are printed: summary, errors, families, corruptions):
    clean, each corruption   accuracy (a corruption's severities pooled)
    each family              accuracy over the family's corruptions (Hendrycks & Dietterich 2019's noise,
                             blur, weather, digital: store.vocabulary)
    mean corruption          accuracy over every corrupted setting
    mean corruption error    1 - mean corruption accuracy: the unnormalised mCE
    accuracy drop            clean - mean corruption accuracy: what corruption costs the model
    relative mCE             analysis.matrices' relative mCE (normalised by each model's reference;
                             corruptions that barely hurt the reference are left out, for a group from
                             every seed when from one, and `report_notes` says which)
Intervals: a model's accuracy has the Wilson interval over its pooled samples (its accuracy drop
Newcombe's interval for independent samples; its relative mCE none); a group's figures are the mean over
its seeds with a Student t interval across them (one seed: the model's interval). Accuracy intervals are
clipped to [0, 1]. Each accuracy cell of a pruned row is tested against its reference on the same
samples (uncertainty.model_statistics / group_statistics: McNemar per model, the t test over seeds per
group, none below stats.MIN_SEEDS seeds), Holm-adjusted over the cells printed. Bold: the best per column
and every cell its interval cannot tell from it (with_marks). LaTeX is split into tables that fit a
two-column paper with every number at 7 pt (render_report), never scaled down.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from analysis import escape, stats, uncertainty
from analysis.matrices import MIN_REFERENCE_RISE, corruption_errors, model_summary
from store.catalog import Catalog
from store.vocabulary import (
    CORRUPTIONS,
    FAMILY_NAMES,
    LEVELS,
    MODEL_SORT,
    QUANTIZATIONS,
    TARGET_UNITS,
    UNPRUNED,
)

OTHER = "other"  # the family column of a corruption the vocabulary does not know
MEAN, ERROR, DROP, RELATIVE = "mean corruption", "mean corruption error", "accuracy drop", "relative mCE"
# Column -> its printed LaTeX header.
SUMMARY_HEADERS: dict[str, str] = {"clean": "Clean", MEAN: "Corr.", ERROR: "Err.", DROP: "Drop",
                                   RELATIVE: "mCE$_\\mathrm{rel}$"}
# Column group -> what it holds; `--columns` takes a comma list of them (printed in the table's order).
COLUMN_GROUPS: dict[str, str] = {
    "summary": "clean accuracy, mean corruption accuracy and relative mCE",
    "errors": "mean corruption error and accuracy drop",
    "families": "one column per corruption family",
    "corruptions": "every corruption",
}
FULL = "full"  # the default: corruptions, summary and errors
FULL_GROUPS: tuple[str, ...] = ("corruptions", "summary", "errors")
INTERVALS: tuple[str, ...] = ("row", "inline", "none")  # where a cell's interval is printed
REPORT_FORMATS: tuple[str, ...] = ("markdown", "csv", "latex")
CSV_COLUMNS: tuple[str, ...] = ("row", "method", "target_sparsity", "seeds", "column_name", "mean", "low", "high",
                                "p_value")
ALPHA = 0.05
TOO_FEW = "too few seeds"  # `test` of a group cell with more than one but fewer than stats.MIN_SEEDS seeds
# LaTeX: the text width of a two-column article (10 pt) and one of its columns, in points: what the
# automatic split fits (_width estimates what a table needs).
TEXT_WIDTH, COLUMN_WIDTH = 469.0, 229.5


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
    """The paper table, long: one row per (row, column) with mean, low, high (95 %), p_value (the test
    against the model's reference; null for rows without one, the derived columns and groups with too few
    seeds) and `test` (which test: "McNemar", "t over seeds" or TOO_FEW); `sparsity` is the row's measured
    sparsity (mean over seeds). Ordered as the matrix."""
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
    mce = _relative_mce(catalog, level)[0].join(clean.select(meta), on="model_id").with_columns(
        pl.lit(RELATIVE).alias("column_name"), pl.lit(None, pl.Float64).alias("low"), pl.lit(None, pl.Float64).alias("high"))
    keys = [*meta, "column_name", "mean", "low", "high"]
    per_model = pl.concat([accuracy.select(keys), drops.select(keys), mce.select(keys)]).with_columns(
        pl.col("mean", "low", "high").cast(pl.Float64).fill_nan(None))
    sparsity = model_summary(catalog).select("model_id", pl.col("sparsity").cast(pl.Float64))
    if level == "model":
        table = per_model.rename({"model_id": "row"}).with_columns(pl.lit(1, pl.UInt32).alias("seeds"))
        tests = cells.select(pl.col("model_id").alias("row"), pl.col("corruption").alias("column_name"), "p_value",
                             pl.when(pl.col("p_value").is_not_null()).then(pl.lit("McNemar")).alias("test"))
        measured = sparsity.rename({"model_id": "row"})
    else:
        table = _over_seeds(per_model)
        is_accuracy = ~pl.col("column_name").is_in([DROP, RELATIVE])
        table = table.with_columns(pl.when(is_accuracy).then(pl.col(c).clip(0, 1)).otherwise(pl.col(c)).alias(c)
                                   for c in ("low", "high"))
        tests = uncertainty.group_statistics(cells).select(
            pl.col("group_id").alias("row"), pl.col("corruption").alias("column_name"), "p_value",
            pl.when(pl.col("paired_seeds") == 1).then(pl.lit("McNemar"))
            .when(pl.col("paired_seeds") >= stats.MIN_SEEDS).then(pl.lit("t over seeds"))
            .when(pl.col("paired_seeds") > 1).then(pl.lit(TOO_FEW)).alias("test"))
        measured = per_model.select("model_id", pl.col("group_id").alias("row")).unique().join(
            sparsity, on="model_id").group_by("row").agg(pl.col("sparsity").mean())
    table = table.join(tests, on=["row", "column_name"], how="left").join(measured, on="row", how="left")
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
        "row", "method", "target_sparsity", "sparsity", "seeds", "column_name", "mean", "low", "high", "p_value",
        "test")


def _relative_mce(catalog: Catalog, level: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per model: model_id, mean = its relative mCE; per row: row, left_out = the corruptions left out).

    A corruption is left out where the reference's error rises by less than MIN_REFERENCE_RISE
    (analysis.matrices); per group it is left out for every seed when it is for one, so the group's mean
    over seeds averages relative mCEs over the same corruptions."""
    errors = corruption_errors(catalog).select("model_id", "corruption", "relative_ce", "relative_ce_note").join(
        uncertainty.groups(catalog).select("model_id", "group_id"), on="model_id")
    unit = "model_id" if level == "model" else "group_id"
    errors = errors.with_columns(pl.col("relative_ce_note").is_not_null().any().over(unit, "corruption").alias("out"))
    kept = errors.filter(~pl.col("out")).group_by("model_id").agg(
        pl.when(pl.col("relative_ce").null_count() == 0).then(pl.col("relative_ce").mean()).alias("mean"))
    means = errors.select("model_id").unique().join(kept, on="model_id", how="left")
    left_out = errors.filter(pl.col("out")).group_by(pl.col(unit).alias("row")).agg(
        pl.col("corruption").unique().sort().alias("left_out"))
    return means, left_out


def _reference_words(catalog: Catalog) -> str:
    """Who each model is compared with, naming the chosen reference or an example of a base."""
    if catalog.reference is not None:
        return f"Reference: every model is compared with the chosen reference, {catalog.reference}"
    models = catalog.query("SELECT model_id, method, reference_model_id FROM models "
                           "WHERE reference_model_id IS NOT NULL ORDER BY model_id", name="report_references")
    if models.is_empty():
        return "Reference: no model of this store has a base in it, so nothing is compared"
    chained = models.join(models.select(pl.col("model_id").alias("reference_model_id")), on="reference_model_id")
    example = (chained if chained.height else models).row(0, named=True)
    return ("Reference: each model is compared with its base, the model it was derived from (e.g. "
            f"{example['reference_model_id']} for {example['model_id']})")


def report_notes(catalog: Catalog, level: str = "group") -> list[str]:
    """The table's notes, one sentence per kind, each starting with a capital: who each model is compared
    with, what relative mCE is normalised by, and which corruptions it leaves out at `level` (one sentence
    listing them, with how many rows each)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of: {', '.join(LEVELS)}")
    notes = [_reference_words(catalog),
             "Relative mCE: Hendrycks & Dietterich's relative mCE with each model's reference as the baseline "
             "instead of AlexNet: per corruption, the rise of the model's error over its clean error divided by "
             "the reference's, averaged over corruptions whose reference error rises by at least "
             f"{MIN_REFERENCE_RISE} (a smaller denominator makes the ratio explode)"
             + ("; a group leaves a corruption out for all its seeds when it does for one" if level == "group" else "")]
    means, left_out = _relative_mce(catalog, level)
    rows = uncertainty.groups(catalog)["group_id" if level == "group" else "model_id"].n_unique()
    counts = left_out.explode("left_out").group_by("left_out").agg(pl.len().alias("rows")).sort(
        pl.col("rows"), "left_out", descending=[True, False])
    if counts.height:
        unit = "groups" if level == "group" else "models"
        listed = ", ".join(f"{c} ({n} of {rows} {unit})" for c, n in counts.rows())
        notes.append(f"Left out of relative mCE because the reference's error rises by less than "
                     f"{MIN_REFERENCE_RISE}: {listed}")
    return notes


def column_groups(columns: str = FULL) -> tuple[str, ...]:
    """`--columns` as column groups: FULL, or a comma list of COLUMN_GROUPS (e.g. "summary,families")."""
    if columns == FULL:
        return FULL_GROUPS
    groups = tuple(dict.fromkeys(part.strip() for part in columns.split(",") if part.strip()))
    unknown = [g for g in groups if g not in COLUMN_GROUPS]
    if unknown or not groups:
        raise ValueError(f"unknown column group {', '.join(map(repr, unknown)) or repr(columns)}; choose "
                         f"{FULL} or a comma list of: {', '.join(COLUMN_GROUPS)}")
    return groups


def _group_of(column: str) -> str:
    if column.endswith(" (family)"):
        return "families"
    if column in ("clean", MEAN, RELATIVE):
        return "summary"
    return "errors" if column in (ERROR, DROP) else "corruptions"


def select_columns(table: pl.DataFrame, columns: str = FULL) -> pl.DataFrame:
    """The columns of the groups `columns` names (column_groups), in the table's order: clean, every
    corruption, each family, mean corruption, mean corruption error, accuracy drop, relative mCE."""
    groups = column_groups(columns)
    return table.filter(pl.col("column_name").map_elements(_group_of, return_dtype=pl.String).is_in(list(groups)))


def _overlaps(a: dict, b: dict) -> bool:
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def with_marks(table: pl.DataFrame) -> pl.DataFrame:
    """Adds p_adjusted (Holm over the tested cells given), `significant` (p_adjusted < ALPHA) and `best`:
    per column, the best mean (highest accuracy, lowest error, drop or relative mCE) and every cell whose
    95 % interval overlaps the best one's (they cannot be told apart), but none of them where every cell's
    interval overlaps the best one's or the best has no interval (then nothing is distinguishably best)."""
    marked = uncertainty.with_significance(table, "holm", ALPHA)
    best: set[int] = set()
    cells = marked.with_row_index("_index")
    for (column,), part in cells.filter(pl.col("mean").is_not_null()).group_by("column_name", maintain_order=True):
        rows = part.sort("mean", descending=column not in (ERROR, DROP, RELATIVE)).to_dicts()
        top = rows[0]
        if top["low"] is None or top["high"] is None:
            continue
        tied = [r for r in rows if r["low"] is not None and r["high"] is not None and _overlaps(r, top)]
        if len(tied) < len(rows):
            best.update(r["_index"] for r in tied)
    return cells.with_columns(pl.col("_index").is_in(list(best)).alias("best")).drop("_index")


def row_names(method: str, target_sparsity: float | None, sparsity: float | None) -> tuple[str, str | None]:
    """(name, detail) of a row in print: the method and its target sparsity ("lrr 90 %"), what a target
    counts where it is not weights ("channels 50 %") with the weights it removed as the detail ("weights
    75 %"), a quantization by its operation ("int8", "channels 50 % + int8"), the unpruned model by its
    method; detail None where there is nothing more to say."""
    steps = method.split("+")
    operations = [s for s in steps if s in QUANTIZATIONS]
    pruning = "+".join(s for s in steps if s not in QUANTIZATIONS)
    if not pruning:
        return " + ".join(operations), None
    detail = None
    if pruning != UNPRUNED and target_sparsity is not None:
        unit = TARGET_UNITS.get(pruning)
        if unit and sparsity is not None:
            detail = f"weights {sparsity * 100:.0f} %"
        pruning = f"{unit or pruning} {target_sparsity * 100:.3g} %"
    return " + ".join([pruning, *operations]), detail


def row_label(method: str, target_sparsity: float | None, sparsity: float | None) -> str:
    """row_names on one line: "lrr 90 %", "channels 50 % (weights 75 %)", "int8"."""
    name, detail = row_names(method, target_sparsity, sparsity)
    return f"{name} ({detail})" if detail else name


def _number(value: float, digits: int, minus: str = "\u2212") -> str:
    """`value` with `digits` decimals and a real minus sign (never a hyphen) when negative."""
    text = f"{abs(value):.{digits}f}"
    return minus + text if value < 0 and float(text) != 0 else text


def _too_few(marked: pl.DataFrame) -> list[int]:
    """The seed counts of the rows whose cells have too few seeds to test at group level."""
    if "test" not in marked.columns:
        return []
    return sorted(set(marked.filter(pl.col("test") == TOO_FEW)["seeds"].to_list()))


def _fraction_text(mean: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """"mean [low, high]" with minus signs (just the mean without an interval, "–" without a mean)."""
    if mean is None:
        return "–"
    text = _number(mean, digits)
    if low is None or high is None:
        return text
    return f"{text} [{_number(low, digits)}, {_number(high, digits)}]"


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


def _label(row: dict, level: str) -> str:
    """A row's printed name (not escaped): its model id, or row_label of its group."""
    if level == "model":
        return str(row["row"])
    return row_label(row["method"], row["target_sparsity"], row.get("sparsity"))


def _latex_names(row: dict, level: str, intervals: str) -> tuple[str, str]:
    """A row's two LaTeX label lines: its name, and below it (with intervals on a row of their own) its
    seeds and the weights a channel target removed; on one line otherwise."""
    if level == "model":
        return escape.latex(row["row"]), ""
    name, detail = row_names(row["method"], row["target_sparsity"], row.get("sparsity"))
    seeds = f"{row['seeds']} seed{'s' if row['seeds'] > 1 else ''}"
    if intervals != "row":
        return escape.latex(f"{name} ({detail})" if detail else name), ""
    return escape.latex(name), escape.latex(", ".join([*([detail] if detail else []), seeds]))


def _bounds(low: float, high: float, digits: int, minus: str, dash: str) -> str:
    """An interval rounded outwards (rounding never narrows it): "31–62" when both bounds are
    non-negative, else "−104 to −36", never "-104--36"."""
    scale = 10 ** digits
    # round away the float error first (-1.04 * 100 is -104.00000000000001), then outwards
    low, high = math.floor(round(low * scale, 6)) / scale, math.ceil(round(high * scale, 6)) / scale
    joint = dash if low >= 0 else " to "
    return f"{_number(low, digits, minus)}{joint}{_number(high, digits, minus)}"


def _latex_cells(cell: dict | None, intervals: str) -> tuple[str, str]:
    """One cell in % as (mean, interval): the mean with one decimal (bold when best, * when it differs
    from the reference) and its interval in whole percents rounded outwards, on the line below ("row"),
    after the mean ("inline") or not at all ("none")."""
    if cell is None or cell["mean"] is None:
        return "--", ""
    text = _number(cell["mean"] * 100, 1, "$-$")
    if cell["best"]:
        text = rf"\textbf{{{text}}}"
    if cell["significant"]:
        text += r"$^{\ast}$"
    if cell["low"] is None or cell["high"] is None or intervals == "none":
        return text, ""
    bounds = _bounds(cell["low"] * 100, cell["high"] * 100, 0, "$-$", "--")
    return (f"{text} [{bounds}]", "") if intervals == "inline" else (text, bounds)


def _parts(widths: list[float], label: float, split: int | None) -> list[list[int]]:
    """The columns (indices) of each table: `split` tables of nearly equal column counts, or (None) the
    fewest that each fit the text width (as _width estimates it)."""
    n = len(widths)
    if split is None:
        split = 1
        while split < n and max(label + sum(part) for part in _chunks(widths, split)) > TEXT_WIDTH * 0.97:
            split += 1
    return _chunks(list(range(n)), max(1, min(split, n)))


def _chunks(items: list, parts: int) -> list[list]:
    size, extra = divmod(len(items), parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


# LaTeX markup in a cell, header or label -> what it prints, for _width.
_PRINTED = {"\\textbf{": "", "$^{\\ast}$": "*", "$-$": "-", "--": "-", "\\%": "%", "\\_": "_", "\\&": "&",
            "\\,": "", "$_\\mathrm{rel}$": "rel", "{": "", "}": ""}
# Printed widths in points at \\scriptsize (7 pt Computer Modern, measured with pdftotext -bbox): digits,
# the en dash and most lower-case letters 3.97; the rest below; bold 13.5 % wider.
_POINTS = {"%": 6.54, " ": 2.7, ".": 2.27, ",": 2.27, "*": 2.9, "(": 3.2, ")": 3.2, "i": 2.27, "l": 2.27,
           "t": 3.1, "e": 3.54, "m": 6.8, "w": 5.7, "M": 8.0, "W": 8.0}


def _width(texts: list[str]) -> float:
    """Printed width in points of the widest of these LaTeX texts at \\scriptsize, plus 2 x \\tabcolsep."""
    def printed(text: str) -> float:
        bold = 1.135 if "\\textbf" in text else 1.0
        for markup, shown in _PRINTED.items():
            text = text.replace(markup, shown)
        return bold * sum(_POINTS.get(char, 5.8 if char.isupper() else 3.97) for char in text)

    return max((printed(t) for t in texts), default=8.0) + 3.0


def _significance_words(level: str, too_few: list[int]) -> str:
    """What the significance mark means at `level`, and which rows have none for want of seeds."""
    if level == "model":
        test = "exact McNemar test on the same samples"
    else:
        test = (f"paired $t$ test over seeds, the seed as unit, at least {stats.MIN_SEEDS} seeds; one seed: "
                "that model's exact McNemar test on the same samples")
    words = f"differs from its reference ({test}; Holm-adjusted $p < 0.05$ over the cells shown)."
    if too_few:
        words += (f" Rows with {' or '.join(map(str, too_few))} seeds carry no mark: "
                  f"{uncertainty.too_few_seeds_note(too_few)}.")
    return words


def _laid_out(table: pl.DataFrame) -> tuple[pl.DataFrame, list[str], list[str], dict, dict]:
    """The marked table (with_marks) laid out for printing: column names and rows in order, each cell by
    (row, column) and each row's first cell (its label fields)."""
    marked = with_marks(table)
    names = list(dict.fromkeys(marked["column_name"].to_list()))
    rows = list(dict.fromkeys(marked["row"].to_list()))
    by_cell = {(c["row"], c["column_name"]): c for c in marked.iter_rows(named=True)}
    first = {r["row"]: r for r in marked.iter_rows(named=True)}
    return marked, names, rows, by_cell, first


def _latex(table: pl.DataFrame, level: str, intervals: str, split: int | None, notes: list[str]) -> str:
    marked, names, rows, by_cell, first = _laid_out(table)
    cells = {row: [_latex_cells(by_cell.get((row, n)), intervals) for n in names] for row in rows}
    labels = {row: _latex_names(first[row], level, intervals) for row in rows}
    widths = [_width([_header(names[i]), *(cells[row][i][j] for row in rows for j in (0, 1))])
              for i in range(len(names))]
    label_width = _width([*(line for pair in labels.values() for line in pair), "Method"])
    parts = _parts(widths, label_width, split)
    one_column = len(parts) == 1 and label_width + sum(widths) <= COLUMN_WIDTH * 0.97
    environment = "table" if one_column else "table*"
    abbreviations = [f"{CORRUPTIONS[c].abbreviation} = {c.replace('_', ' ')}" for c in names if c in CORRUPTIONS]
    interval = ("mean over seeds with its 95\\,\\% Student $t$ interval across seeds (one seed: Wilson "
                "interval over the test samples)" if level == "group" else
                "95\\,\\% Wilson interval over the test samples (accuracy drop: Newcombe's hybrid score interval)")
    shown = {"row": "below the mean", "inline": "after the mean in brackets"}
    where = (f"{interval}, shown {shown[intervals]} in whole percents rounded outwards, accuracy intervals "
             "clipped to [0, 100]" if intervals != "none" else f"the intervals ({interval}) are in the CSV output")
    caption = (f"Robustness of pruned models (all figures in \\%): {where}. Bold: the best in the column and "
               "every row whose interval overlaps the best one's (not told apart from it); none where every "
               "interval overlaps the best one's. $^{\\ast}$: " + _significance_words(level, _too_few(marked)) + " "
               + ("Err.: mean corruption error (unnormalised mCE); Drop: clean minus mean corruption accuracy. "
                  if ERROR in names or DROP in names else "")
               + ("Families: Hendrycks \\& Dietterich (2019). " if any(n.endswith(" (family)") for n in names)
                  else "")
               + ("Corr.: mean corruption accuracy. " if MEAN in names else "")
               + ("mCE$_\\mathrm{rel}$: relative mCE, against each model's reference (see note)."
                  if RELATIVE in names else ""))
    continued = "Continued from Table~\\ref{tab:prunescope}."
    lines = ["% prunescope report (python -m compute report). Needs \\usepackage{booktabs} in the preamble."]
    for number, part in enumerate(parts, start=1):
        suffix = "" if len(parts) == 1 else f" (part {number} of {len(parts)})"
        label = "tab:prunescope" + ("" if number == 1 else f"-{number}")
        lines += [f"\\begin{{{environment}}}[t]", "\\centering", "\\scriptsize", "\\setlength{\\tabcolsep}{1.5pt}",
                  f"\\caption{{{caption if number == 1 else continued}{suffix}}}", f"\\label{{{label}}}",
                  f"\\begin{{tabular}}{{l{'r' * len(part)}}}", "\\toprule",
                  " & ".join(["Model" if level == "model" else "Method", *(_header(names[i]) for i in part)])
                  + r" \\", "\\midrule"]
        for row in rows:
            lines.append(" & ".join([labels[row][0], *(cells[row][i][0] for i in part)]) + r" \\")
            if intervals == "row":
                lines.append(" & ".join([labels[row][1], *(cells[row][i][1] for i in part)]) + r" \\[1pt]")
        lines += ["\\bottomrule", "\\end{tabular}"]
        if number == len(parts):
            legend = ([", ".join(abbreviations) + "."] if abbreviations else []) + [escape.latex(n) + "." for n in notes]
            if legend:
                lines += ["\\par\\smallskip", "\\parbox{\\linewidth}{\\scriptsize " + " ".join(legend) + "}"]
        lines.append(f"\\end{{{environment}}}")
    return "\n".join(lines) + "\n"


def _markdown_cell(cell: dict | None, intervals: str) -> tuple[str, str]:
    """(mean, interval) of one Markdown cell: "**0.900** †" and "[0.850, 0.950]" (minus signs, not hyphens)."""
    if cell is None or cell["mean"] is None:
        return "–", ""
    text = _number(cell["mean"], 3)
    text = (f"**{text}**" if cell["best"] else text) + (" †" if cell["significant"] else "")
    if cell["low"] is None or cell["high"] is None or intervals == "none":
        return text, ""
    bounds = f"[{_number(cell['low'], 3)}, {_number(cell['high'], 3)}]"
    return (f"{text} {bounds}", "") if intervals == "inline" else (text, bounds)


def _markdown_label(row: dict) -> str:
    """A group's printed name in a Markdown cell: the store's text (its method) escaped, our words as written."""
    name, detail = row_names(row["method"], row["target_sparsity"], row.get("sparsity"))
    return escape.markdown_cell(name) + (f" ({escape.markdown_cell(detail)})" if detail else "")


def _markdown(table: pl.DataFrame, level: str, intervals: str, split: int | None, notes: list[str]) -> str:
    marked, names, rows, by_cell, first = _laid_out(table)
    lines = []
    for part in _chunks(list(range(len(names))), max(1, min(split or 1, len(names)))):
        if lines:
            lines.append("")
        lines += ["| " + " | ".join(escape.markdown_cell(c) for c in ["row", "model", "seeds", *(names[i] for i in part)])
                  + " |", "|" + "|".join("---" for _ in range(3 + len(part))) + "|"]
        for row in rows:
            cells = [_markdown_cell(by_cell.get((row, names[i])), intervals) for i in part]
            start = [escape.markdown_cell(row), _markdown_label(first[row]), str(first[row]["seeds"])]
            lines.append("| " + " | ".join([*start, *(c[0] for c in cells)]) + " |")  # cells: our numbers
            if intervals == "row":
                lines.append("| " + " | ".join(["", "", "95 % interval", *(c[1] for c in cells)]) + " |")
    too_few = _too_few(marked)
    test = ("exact McNemar test" if level == "model" else
            f"paired t test over seeds, at least {stats.MIN_SEEDS} seeds; one seed: that model's exact McNemar test")
    legend = ["", f"Cells: mean{' [95 % interval]' if intervals != 'none' else ''}; **bold**: the best in the "
              "column and every row whose interval overlaps the best one's (none where every interval overlaps "
              f"it); †: differs from the reference ({test}; Holm-adjusted p < 0.05 over the cells shown)."
              + (f" Rows with {' or '.join(map(str, too_few))} seeds carry no †: "
                 f"{uncertainty.too_few_seeds_note(too_few)}." if too_few else ""),
              *(f"- {escape.markdown_cell(note)}." for note in notes)]
    return "\n".join([*lines, *legend]) + "\n"


def render_report(table: pl.DataFrame, fmt: str, *, level: str = "group", columns: str = FULL,
                  intervals: str | None = None, split: int | None = None, notes: list[str] | None = None) -> str:
    """report_table (rows at `level`) as text with the column groups `columns` (column_groups): csv keeps
    the numbers (CSV_COLUMNS, one line per cell, text cells made inert); markdown (a GitHub table with a
    legend) and latex (booktabs `table`, or `table*` when wider than a column, with caption, legend and
    `notes`) print the marked cells with their interval per `intervals` (INTERVALS; default: inline in
    markdown, a row below in latex), in `split` tables (default: one in markdown; in latex the fewest that
    fit the text width of a two-column paper with every number at 7 pt)."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(REPORT_FORMATS)}")
    if intervals is not None and intervals not in INTERVALS:
        raise ValueError(f"unknown intervals {intervals!r}; choose one of: {', '.join(INTERVALS)}")
    if split is not None and split < 1:
        raise ValueError(f"split must be 1 or more tables, not {split}")
    shown = select_columns(table, columns)
    if fmt == "csv":
        return escape.csv(shown.select(CSV_COLUMNS))
    if fmt == "markdown":
        return _markdown(shown, level, intervals or "inline", split, notes or [])
    return _latex(shown, level, intervals or "row", split, notes or [])
