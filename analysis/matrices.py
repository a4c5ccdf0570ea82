"""Evaluation matrices and robustness figures: a metric's mean per model x setting, corruption errors
(CE, relative CE), per-model summaries (clean and corruption accuracy, mCE) and geometry distributions.

Conventions:
- accuracy = fraction of predictions that are correct; error E = 1 - accuracy.
- the reference of a model = `models.reference_model_id`: the model it was derived from
  (its base), or the reference the catalog was opened with; null for a model without one.
- Geometric means (angle_true, feature_norm, margin, loss, confidence, p_true) use only rows whose
  geometry is finite (`finite`); accuracy uses every row.
- A ratio whose denominator is zero (up to rounding) is null, never inf or NaN.
"""

from __future__ import annotations

import polars as pl

from analysis.sql import choice, equal_to, ratio
from store.catalog import Catalog
from store.vocabulary import COMMON_CORRUPTIONS, MODEL_ORDER, SETTING_ORDER, model_order

# Metrics a matrix cell may average: name -> meaning. Their means come from the per-partition sums
# (catalog view partition_summary, store.layout.SUMMARY_METRICS), so no cell scans the files.
CELL_METRICS: dict[str, str] = {
    "accuracy": "fraction of predictions that are correct",
    "angle_true": "angle (degrees) between feature and true class's weight row",
    "feature_norm": "length of the penultimate feature",
    "margin": "signed distance to the nearest decision boundary (negative when wrong)",
    "loss": "cross-entropy loss",
    "confidence": "softmax probability of the predicted class",
    "p_true": "softmax probability of the true class",
}
_CELL_SQL: dict[str, str] = {
    "accuracy": "correct / rows AS value, rows AS samples",
    **{name: f"CASE WHEN finite > 0 THEN {name}_sum / finite END AS value, finite AS samples"
       for name in CELL_METRICS if name != "accuracy"},
}
GEOMETRY: tuple[str, ...] = ("angle_true", "feature_norm", "margin")
GROUPINGS: tuple[str, ...] = ("model", "method")


def cells_sql(metric: str) -> str:
    """CTEs `cell` and `model_cell`: the metric's mean per (model, corruption, severity), beside the same
    cell of the model's reference (`reference_value`) and the model's own clean cell."""
    expression = _CELL_SQL[choice(metric, list(CELL_METRICS), "metric")]
    return f"""
        cell AS (
            SELECT model_id, corruption, severity, {expression}
            FROM partition_summary
        ),
        model_cell AS (
            SELECT c.model_id, m.arch, m.method, m.target_sparsity, m.sparsity, m.reference_model_id, c.corruption,
                   c.severity,
                   c.samples, c.value, d.value AS reference_value, c.value - d.value AS delta_vs_reference,
                   c.value - clean.value AS delta_vs_clean
            FROM cell c
            JOIN models m USING (model_id)
            LEFT JOIN cell d
              ON d.model_id = m.reference_model_id AND d.corruption = c.corruption AND d.severity = c.severity
            LEFT JOIN cell clean ON clean.model_id = c.model_id AND clean.corruption = 'clean'
        )"""  # noqa: S608 (constant SQL)


def metric_matrix(catalog: Catalog, metric: str = "accuracy", group_by: str = "model") -> pl.DataFrame:
    """Mean of `metric` (one of CELL_METRICS) per row group x (corruption, severity): the evaluation matrix.

    group_by="model": one row per (model, corruption, severity) with `value` (the mean), `samples`,
    `reference_value` (the reference's mean in the same cell), `delta_vs_reference` = value - reference_value
    and `delta_vs_clean` = value - the model's clean value.
    group_by="method": one row per (arch, method, target_sparsity, corruption, severity); every column is
    the mean over the group's models (each model weighs the same, e.g. over seeds), `models` counts them.
    Architectures are kept apart so that a study with several never averages across them.
    """
    cells = cells_sql(metric)
    if choice(group_by, GROUPINGS, "grouping") == "model":
        select = f"""
            SELECT model_id, arch, method, target_sparsity, sparsity, corruption, severity, samples, value,
                   reference_value, delta_vs_reference, delta_vs_clean
            FROM model_cell ORDER BY {MODEL_ORDER}, {SETTING_ORDER}"""  # noqa: S608 (constant SQL)
    else:
        select = f"""
            SELECT arch, method, target_sparsity, corruption, severity, count(*) AS models, sum(samples) AS samples,
                   avg(value) AS value, avg(reference_value) AS reference_value,
                   avg(delta_vs_reference) AS delta_vs_reference, avg(delta_vs_clean) AS delta_vs_clean
            FROM model_cell GROUP BY arch, method, target_sparsity, corruption, severity
            ORDER BY {model_order("arch")},
                     {SETTING_ORDER}"""  # noqa: S608 (constant SQL)
    return catalog.query(f"WITH {cells} {select}", name="metric_matrix")


def accuracy_matrix(catalog: Catalog, group_by: str = "model") -> pl.DataFrame:
    """Accuracy per model (or per (arch, method, target_sparsity)) x (corruption, severity).

    Columns as metric_matrix with `value` -> `accuracy`, `reference_value` -> `reference_accuracy`, plus
    `error` = 1 - accuracy, `drop_vs_reference` = reference_accuracy - accuracy (positive: the model is
    worse than its reference) and `drop_vs_clean` = clean accuracy - accuracy (what the corruption costs).
    """
    frame = metric_matrix(catalog, "accuracy", group_by)
    return frame.with_columns(
        (1 - pl.col("value")).alias("error"),
        (-pl.col("delta_vs_reference")).alias("drop_vs_reference"),
        (-pl.col("delta_vs_clean")).alias("drop_vs_clean"),
    ).drop("delta_vs_reference", "delta_vs_clean").rename({"value": "accuracy",
                                                             "reference_value": "reference_accuracy"})


# Relative CE divides by how much the reference model's error rises under a corruption; a rise near
# 0 (a corruption that barely hurts the reference) makes the ratio explode. Below this mean rise over the
# severities (in error, 0-1) a corruption's relative CE is left out, and so out of the relative mCE.
MIN_REFERENCE_RISE = 0.05

_CORRUPTION_ERRORS = f"""
    per_corruption_raw AS (
        SELECT c.model_id, c.corruption, list_contains($1, c.corruption) AS common, count(*) AS severities,
               avg(c.value) AS accuracy,
               CASE WHEN count(c.reference_value) = count(*) THEN
                   {ratio("sum(1 - c.value)", "sum(1 - c.reference_value)")} END AS ce,
               CASE WHEN count(c.reference_value) = count(*) THEN
                   avg((1 - c.reference_value) - (1 - clean.reference_value)) END AS reference_rise,
               CASE WHEN count(c.reference_value) = count(*) THEN
                   {ratio("sum((1 - c.value) - (1 - clean.value))",
                           "sum((1 - c.reference_value) - (1 - clean.reference_value))")}
                   END AS unguarded_relative_ce
        FROM model_cell c
        LEFT JOIN model_cell clean ON clean.model_id = c.model_id AND clean.corruption = 'clean'
        WHERE c.corruption <> 'clean'
        GROUP BY ALL
    ),
    per_corruption AS (
        SELECT * EXCLUDE (unguarded_relative_ce),
               CASE WHEN reference_rise >= {MIN_REFERENCE_RISE} THEN unguarded_relative_ce END AS relative_ce,
               CASE WHEN reference_rise < {MIN_REFERENCE_RISE} THEN
                   printf('left out: the reference error rises by only %.3f under %s (below {MIN_REFERENCE_RISE}), '
                          || 'so the ratio divides by nearly 0', reference_rise, corruption) END AS relative_ce_note
        FROM per_corruption_raw
    )"""  # noqa: S608 (constant SQL)


def corruption_errors(catalog: Catalog) -> pl.DataFrame:
    """Per (model, corruption): accuracy (mean over severities), CE_c and relative CE_c.

    With E = error and the baseline r = the model's reference (reference/cifar10c.md; there is no agreed
    AlexNet row for CIFAR):
        ce             = CE_c = sum_s E(f,s,c) / sum_s E(r,s,c)
        reference_rise = mean_s (E(r,s,c) - E(r,clean)): how much c hurts the reference
        relative_ce    = sum_s (E(f,s,c) - E(f,clean)) / sum_s (E(r,s,c) - E(r,clean))
    The sums run over the severities present for the model; all are null when the reference lacks one
    of them, has no clean row (relative_ce), or when the denominator is zero (e.g. a reference that
    makes no error). relative_ce is also null, with the reason in `relative_ce_note`, when reference_rise
    is below MIN_REFERENCE_RISE: its denominator is then near 0 and the ratio meaningless.
    `common` says whether c is one of the 15 COMMON_CORRUPTIONS.
    """
    return catalog.query(f"""
        WITH {cells_sql("accuracy")}, {_CORRUPTION_ERRORS}
        SELECT p.model_id, m.arch, m.method, m.target_sparsity, m.reference_model_id, p.corruption, p.common,
               p.severities, p.accuracy, 1 - p.accuracy AS error, p.ce, p.reference_rise, p.relative_ce,
               p.relative_ce_note
        FROM per_corruption p JOIN models m USING (model_id)
        ORDER BY {MODEL_ORDER}, p.corruption
    """, [list(COMMON_CORRUPTIONS)], name="corruption_errors")  # noqa: S608 (constant SQL)


def model_summary(catalog: Catalog) -> pl.DataFrame:
    """One row per model: the aggregate robustness figures.

    clean_accuracy              accuracy on clean images (from the predictions, not models.parquet)
    corruption_accuracy         mean accuracy over every (corruption, severity) present
    common_corruption_accuracy  the same over the 15 COMMON_CORRUPTIONS (RobustBench's figure); null
                                unless all 15 are present
    clean_drop_vs_reference     the reference's clean accuracy - clean_accuracy
    corruption_drop_vs_reference  the reference's corruption_accuracy (same cells) - corruption_accuracy;
                                null when the reference lacks one of the cells
    mce, relative_mce           mean of CE_c / relative CE_c over the corruptions present (see
                                corruption_errors); null when any CE_c is null, so that a mean never
                                silently covers fewer corruptions than the model was tested on, except
                                that relative_mce leaves out (openly) the corruptions whose reference
                                rise is below MIN_REFERENCE_RISE
    relative_mce_left_out       those corruptions (a list, empty when none)
    common_mce, common_relative_mce   the same over the 15 COMMON_CORRUPTIONS, null unless all present
    A model without predictions has null figures.
    """
    corrupted = "WHERE corruption <> 'clean'"
    common = "WHERE list_contains($1, corruption)"
    return catalog.query(f"""
        WITH {cells_sql("accuracy")}, {_CORRUPTION_ERRORS},
        per_model AS (
            SELECT model_id,
                   any_value(value) FILTER (WHERE corruption = 'clean') AS clean_accuracy,
                   any_value(reference_value) FILTER (WHERE corruption = 'clean') AS reference_clean_accuracy,
                   avg(value) FILTER ({corrupted}) AS corruption_accuracy,
                   CASE WHEN count(reference_value) FILTER ({corrupted}) = count(*) FILTER ({corrupted})
                        THEN avg(reference_value) FILTER ({corrupted}) END AS reference_corruption_accuracy,
                   CASE WHEN count(DISTINCT corruption) FILTER ({common}) = len($1)
                        THEN avg(value) FILTER ({common}) END AS common_corruption_accuracy
            FROM model_cell GROUP BY model_id
        ),
        per_model_ce AS (
            SELECT model_id,
                   CASE WHEN count(ce) = count(*) THEN avg(ce) END AS mce,
                   CASE WHEN count(relative_ce) = count(*) FILTER (WHERE relative_ce_note IS NULL)
                        THEN avg(relative_ce) END AS relative_mce,
                   coalesce(list(corruption ORDER BY corruption) FILTER (WHERE relative_ce_note IS NOT NULL), [])
                       AS relative_mce_left_out,
                   CASE WHEN count(ce) FILTER (WHERE common) = len($1)
                        THEN avg(ce) FILTER (WHERE common) END AS common_mce,
                   CASE WHEN count(*) FILTER (WHERE common) = len($1) AND count(relative_ce) FILTER (WHERE common)
                             = count(*) FILTER (WHERE common AND relative_ce_note IS NULL)
                        THEN avg(relative_ce) FILTER (WHERE common) END AS common_relative_mce
            FROM per_corruption GROUP BY model_id
        )
        SELECT m.model_id, m.arch, m.method, m.target_sparsity, m.sparsity, m.reference_model_id,
               pm.clean_accuracy, pm.corruption_accuracy, pm.common_corruption_accuracy,
               pm.reference_clean_accuracy - pm.clean_accuracy AS clean_drop_vs_reference,
               pm.reference_corruption_accuracy - pm.corruption_accuracy AS corruption_drop_vs_reference,
               ce.mce, ce.relative_mce, ce.relative_mce_left_out, ce.common_mce, ce.common_relative_mce
        FROM models m
        LEFT JOIN per_model pm USING (model_id)
        LEFT JOIN per_model_ce ce USING (model_id)
        ORDER BY {MODEL_ORDER}
    """, [list(COMMON_CORRUPTIONS)], name="model_summary")  # noqa: S608 (constant SQL)


# -- geometry -----------------------------------------------------------------------------------------

def geometry_summary(catalog: Catalog, *, by_correct: bool = False, model_id: str | None = None,
                     corruption: str | None = None, severity: int | None = None) -> pl.DataFrame:
    """Distribution of angle_true, feature_norm and margin per (model, corruption, severity, class).

    For each metric: `<metric>_mean`, `_std` (sample standard deviation, null for one sample), `_p10`,
    `_p50`, `_p90` (linearly interpolated quantiles); `samples` counts the rows (finite geometry only).
    by_correct=True splits every group further by `correct`. model_id / corruption / severity restrict
    the rows (quantiles over the whole study are costly: restrict when you can).
    """
    where, params = equal_to(model_id=model_id, corruption=corruption, severity=severity)
    aggregates = ", ".join(
        f"avg({m}) AS {m}_mean, stddev_samp({m}) AS {m}_std, quantile_cont({m}::DOUBLE, [0.1, 0.5, 0.9]) AS {m}_q"
        for m in GEOMETRY)  # quantiles in double: DuckDB interpolates in the column's own type
    quantiles = ", ".join(f"{m}_mean, {m}_std, {m}_q[1] AS {m}_p10, {m}_q[2] AS {m}_p50, {m}_q[3] AS {m}_p90"
                          for m in GEOMETRY)
    split = ", correct" if by_correct else ""
    return catalog.query(f"""
        WITH stats AS (
            SELECT model_id, corruption, severity, label{split}, count(*) AS samples, {aggregates}
            FROM predictions
            WHERE finite AND {where}
            GROUP BY ALL
        )
        SELECT model_id, corruption, severity, label, names.label_name{split}, samples, {quantiles}
        FROM stats JOIN (SELECT DISTINCT label, label_name FROM samples) names USING (label)
        ORDER BY model_id, {SETTING_ORDER}, label{split}
    """, params, name="geometry_summary")  # noqa: S608 (constant SQL)


