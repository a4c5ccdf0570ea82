"""Numbers with their uncertainty: replicate groups, intervals and paired tests against the reference.

A *group* is the set of models of the same (arch, method, target_sparsity) that differ only in their seed
(`group_id`, a column of the catalog's `models` view); a study with one seed has one model per group. Each pruned
model is paired with its reference (`models.reference_model_id`: its base, or the chosen reference;
"reference" in column names), on the same samples in the same setting.

Per model and setting (`model_cells`):
    accuracy_low/high   Wilson score interval over the test samples
    drop_vs_reference   reference accuracy - accuracy, on the samples both have; drop_low/high: Newcombe's
                        (1998) paired interval; p_value: exact McNemar test on the discordant samples
Per group and setting (`group_cells`), over the seeds:
    accuracy            mean over seeds with a Student t interval (one seed: the model's Wilson interval)
    drop_vs_reference   mean over seeds of each seed's paired drop, with a Student t interval across
                        them; p_value: the t test over seeds (the seed is the unit), none for fewer than
                        stats.MIN_SEEDS seeds (one seed: the model's Newcombe interval and McNemar p-value)
`with_significance` adjusts the p-values over exactly the cells it is given (the cells a page shows):
Holm (family-wise error) or Benjamini-Hochberg (false discovery rate).

The discordant counts come from one aggregate over the predictions joined with the reference's rows
for the same sample, so no per-sample rows leave DuckDB.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis import stats
from store.catalog import Catalog
from store.vocabulary import LEVELS, SETTING_ORDER, model_order

CORRECTIONS: dict[str, str] = {"holm": "Holm (family-wise error rate)",
                               "bh": "Benjamini-Hochberg (false discovery rate)"}
ALPHA = 0.05


def groups(catalog: Catalog) -> pl.DataFrame:
    """One row per model with its group: model_id, group_id, arch, method, target_sparsity, seed."""
    return catalog.query(f"""
        SELECT m.model_id, m.group_id, m.arch, m.method, m.target_sparsity, m.seed
        FROM models m
        ORDER BY {model_order("m.seed", "m.model_id", table="m")}
    """, name="groups")  # noqa: S608 (constant SQL)


def paired_counts(catalog: Catalog) -> pl.DataFrame:
    """Per (model, corruption, severity): samples and correct (every row), and on the samples the
    reference also has: paired, both_right, only_model (model right, reference wrong), only_reference,
    neither_right.
    With the model's group, seed and reference_model_id.

    Each partition's samples and right answers are two bit strings (bit i = sample i; the catalog's
    partition_bits pre-aggregate, store.aggregates); pairing a model with its reference is then a join
    of 2 x partitions rows and a popcount of the AND, instead of a join of every prediction row with the
    reference's.
    """
    return catalog.query(f"""
        WITH bits AS (SELECT model_id, corruption, severity, samples, correct, present, right_bits AS right
                      FROM partition_bits),
        pairs AS (
            SELECT b.model_id, b.corruption, b.severity, b.samples, b.correct,
                   coalesce(bit_count(b.present & d.present), 0) AS paired,
                   coalesce(bit_count(b.right & d.right), 0) AS both_right,
                   coalesce(bit_count(b.right & d.present), 0) AS model_right,
                   coalesce(bit_count(d.right & b.present), 0) AS reference_right
            FROM bits b JOIN models m USING (model_id)
            LEFT JOIN bits d ON d.model_id = m.reference_model_id AND d.corruption = b.corruption
                            AND d.severity = b.severity
        )
        SELECT p.model_id, m.group_id, m.arch, m.method, m.target_sparsity, m.seed, m.reference_model_id,
               p.corruption, p.severity, p.samples, p.correct, p.paired::BIGINT AS paired,
               p.both_right::BIGINT AS both_right, (p.model_right - p.both_right)::BIGINT AS only_model,
               (p.reference_right - p.both_right)::BIGINT AS only_reference,
               (p.paired - p.model_right - p.reference_right + p.both_right)::BIGINT AS neither_right
        FROM pairs p JOIN models m USING (model_id)
        ORDER BY {model_order("m.seed", "p.model_id", table="m")}, {SETTING_ORDER}
    """, name="paired_counts")  # noqa: S608 (constant SQL)


def model_statistics(counts: pl.DataFrame) -> pl.DataFrame:
    """paired_counts-shaped counts (any grouping of settings into `corruption`, `severity`) -> the same rows
    with the Wilson interval, the paired drop vs reference with Newcombe's interval and McNemar's p-value."""
    k, n = counts["correct"].to_numpy(), counts["samples"].to_numpy()
    low, high = stats.wilson_interval(k, n)
    both, only_model, only_reference, neither = (counts[c].to_numpy() for c in
                                                 ("both_right", "only_model", "only_reference", "neither_right"))
    # A model without a reference (reference_model_id null) has no pair: compared as strings, never as None.
    reference = counts["reference_model_id"].cast(pl.String)
    is_pair = (counts["paired"].to_numpy() > 0) & (reference.is_not_null() & (counts["model_id"] != reference)
                                                    .fill_null(False)).to_numpy()
    # reference - model: the reference plays "A" (its own right answers are both + only_reference).
    drop, drop_low, drop_high = stats.paired_difference_interval(both, only_reference, only_model, neither)
    p_value = stats.mcnemar_exact(only_reference, only_model)
    paired_n = np.maximum(counts["paired"].to_numpy(), 1)
    return counts.with_columns(
        pl.Series("accuracy", k / np.maximum(n, 1)), pl.Series("accuracy_low", low),
        pl.Series("accuracy_high", high),
        pl.Series("reference_accuracy", np.where(is_pair, (both + only_reference) / paired_n, np.nan)).fill_nan(None),
        pl.Series("drop_vs_reference", np.where(is_pair, drop, np.nan)).fill_nan(None),
        pl.Series("drop_low", np.where(is_pair, drop_low, np.nan)).fill_nan(None),
        pl.Series("drop_high", np.where(is_pair, drop_high, np.nan)).fill_nan(None),
        pl.Series("p_value", np.where(is_pair, p_value, np.nan)).fill_nan(None),
    ).with_columns(pl.when(pl.col("samples") == 0).then(None).otherwise(pl.col("accuracy")).alias("accuracy"))


_MODEL_COLUMNS = ("model_id", "group_id", "arch", "method", "target_sparsity", "seed", "reference_model_id",
                  "corruption", "severity", "samples", "accuracy", "accuracy_low", "accuracy_high",
                  "reference_accuracy", "drop_vs_reference", "drop_low", "drop_high", "p_value", "paired",
                  "only_model", "only_reference")


def model_cells(catalog: Catalog) -> pl.DataFrame:
    """Per (model, corruption, severity): accuracy with its Wilson interval, and the drop vs its
    reference with Newcombe's paired interval and the exact McNemar p-value (null for a model without one);
    `paired`, `only_model` and `only_reference` are the paired and discordant sample counts."""
    return model_statistics(paired_counts(catalog)).select(_MODEL_COLUMNS)


def group_statistics(cells: pl.DataFrame) -> pl.DataFrame:
    """Model cells (model_cells' columns) -> one row per (group, corruption, severity) over the seeds.

    accuracy: mean with a t interval (one seed: Wilson); drop_vs_reference: mean of the seeds' paired drops
    with a t interval across them and the t test over seeds (stats.t_test_over_seeds: the seed is the unit),
    p_value null for a group with more than one but fewer than stats.MIN_SEEDS seeds (too few to test at
    group level); one seed: that model's Newcombe interval and McNemar p-value. `paired_seeds` counts the
    seeds with a reference. `model_id` is the group's first model (what a click on the group selects),
    `model_ids` all of them.
    """
    keys = ["group_id", "arch", "method", "target_sparsity", "corruption", "severity"]
    grouped = cells.group_by(keys, maintain_order=True).agg(
        pl.len().alias("seeds"), pl.col("model_id").sort().alias("model_ids"), pl.col("samples").sum(),
        pl.col("accuracy").mean(), pl.col("accuracy").std().alias("accuracy_std"),
        pl.col("accuracy_low").first().alias("single_low"), pl.col("accuracy_high").first().alias("single_high"),
        pl.col("reference_accuracy").mean(), pl.col("drop_vs_reference").mean(),
        pl.col("drop_vs_reference").count().alias("paired_seeds"), pl.col("drop_vs_reference").std().alias("drop_std"),
        pl.col("drop_low").first().alias("single_drop_low"), pl.col("drop_high").first().alias("single_drop_high"),
        pl.col("p_value").first().alias("single_p_value"),
    )
    seeds = grouped["seeds"].to_numpy()
    half = stats.t_half_width(grouped["accuracy_std"].fill_null(0).to_numpy(), seeds)
    mean = grouped["accuracy"].to_numpy()
    paired = grouped["paired_seeds"].to_numpy()
    drop = grouped["drop_vs_reference"].fill_null(np.nan).to_numpy()
    drop_std = grouped["drop_std"].fill_null(np.nan).to_numpy()
    drop_half = stats.t_half_width(drop_std, paired)
    several = paired > 1
    return grouped.with_columns(
        pl.Series("accuracy_low", np.where(seeds > 1, np.clip(mean - half, 0, 1), grouped["single_low"].to_numpy())),
        pl.Series("accuracy_high", np.where(seeds > 1, np.clip(mean + half, 0, 1), grouped["single_high"].to_numpy())),
        pl.Series("drop_low", np.where(several, drop - drop_half, grouped["single_drop_low"].fill_null(np.nan).to_numpy())),
        pl.Series("drop_high", np.where(several, drop + drop_half, grouped["single_drop_high"].fill_null(np.nan).to_numpy())),
        pl.Series("p_value", np.where(several, stats.t_test_over_seeds(drop, drop_std, paired),
                                      grouped["single_p_value"].fill_null(np.nan).to_numpy())),
    ).with_columns(pl.col("drop_low", "drop_high", "p_value").fill_nan(None),
                   pl.col("model_ids").list.first().alias("model_id")).select(
             "model_id", *keys, "seeds", "model_ids", "samples", "accuracy", "accuracy_low", "accuracy_high",
             "reference_accuracy", "drop_vs_reference", "drop_low", "drop_high", "p_value", "paired_seeds")


def too_few_seeds(cells: pl.DataFrame) -> list[int]:
    """The seed counts of the groups in group_statistics cells that have a reference but too few seeds to
    test at group level (more than one, fewer than stats.MIN_SEEDS), smallest first; empty when none."""
    if "paired_seeds" not in cells.columns:
        return []
    short = cells.filter((pl.col("paired_seeds") > 1) & (pl.col("paired_seeds") < stats.MIN_SEEDS))
    return sorted(set(short["paired_seeds"].to_list()))


def too_few_seeds_note(counts: list[int]) -> str:
    """The words for too_few_seeds' counts, e.g. "too few seeds to test at group level (2)"; empty when none."""
    if not counts:
        return ""
    return f"too few seeds to test at group level ({', '.join(map(str, counts))})"


def matrix_cells(catalog: Catalog, level: str = "group") -> pl.DataFrame:
    """The evaluation matrix with intervals: model_cells per model, or group_statistics per group.
    Both have group_id, method, target_sparsity, corruption, severity, accuracy(_low/_high),
    reference_accuracy, drop_vs_reference, drop_low/high and p_value (unadjusted; see with_significance)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of: {', '.join(LEVELS)}")
    cells = model_cells(catalog)
    return cells if level == "model" else group_statistics(cells)


def with_significance(cells: pl.DataFrame, correction: str = "holm", alpha: float = ALPHA) -> pl.DataFrame:
    """Adjust `p_value` over exactly these cells (the ones shown): adds p_adjusted and `significant`
    (p_adjusted < alpha; null where there is no comparison, e.g. the cells of a model without a reference)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of: {', '.join(CORRECTIONS)}")
    adjusted = stats.CORRECTIONS[correction](cells["p_value"].cast(pl.Float64).fill_null(np.nan).to_numpy())
    return cells.with_columns(pl.Series("p_adjusted", adjusted).fill_nan(None)).with_columns(
        (pl.col("p_adjusted") < alpha).alias("significant"))


def group_pairs(pairs: pl.DataFrame, members: pl.DataFrame, value: str) -> pl.DataFrame:
    """A frame of model pairs (model_a, model_b, `value` and, if present, `value`_low/_high, as
    analysis.agreement.model_agreement) averaged per pair of replicate groups: group_a, group_b (group_a <=
    group_b), pairs (model pairs averaged), the mean of `value` and its Student t interval across those
    pairs (value_low/high; for one pair, that pair's own interval when given, else the mean).
    `members` is groups(catalog). Pairs within one group give the rows group_a == group_b: how much the
    group's seeds agree with each other (absent for a group of one seed)."""
    names = members.select("model_id", "group_id")
    bounds = [c for c in (f"{value}_low", f"{value}_high") if c in pairs.columns]
    joined = (pairs.join(names.rename({"model_id": "model_a", "group_id": "a"}), on="model_a")
              .join(names.rename({"model_id": "model_b", "group_id": "b"}), on="model_b")
              .select(pl.min_horizontal("a", "b").alias("group_a"), pl.max_horizontal("a", "b").alias("group_b"),
                      pl.col(value, *bounds).cast(pl.Float64)))
    grouped = joined.group_by("group_a", "group_b", maintain_order=True).agg(
        pl.len().alias("pairs"), pl.col(value).mean(), pl.col(value).std().alias("std"),
        *(pl.col(c).first().alias(f"single_{c}") for c in bounds)).sort("group_a", "group_b")
    half = stats.t_half_width(grouped["std"].fill_null(0).to_numpy(), grouped["pairs"].to_numpy())
    several = pl.col("pairs") > 1
    single = {c: pl.col(f"single_{c}") if c in bounds else pl.col(value) for c in (f"{value}_low", f"{value}_high")}
    return grouped.with_columns(
        pl.when(several).then(pl.col(value) - half).otherwise(single[f"{value}_low"]).alias(f"{value}_low"),
        pl.when(several).then(pl.col(value) + half).otherwise(single[f"{value}_high"]).alias(f"{value}_high"),
    ).drop("std", *(f"single_{c}" for c in bounds))
