"""Analytics over a store: evaluation matrices, corruption errors, geometry summaries, agreement between
models and between corruptions, model vectors for the similarity view, preset sample filters and the free
filter. Every function takes a `Catalog` and returns a Polars frame (`count_rows` an int, `square_matrix`
a frame and an order); the dashboard and `compute embed` call these, never SQL.

Conventions used throughout:

- accuracy = fraction of predictions that are correct; error E = 1 - accuracy.
- "dense model" of a model = `models.dense_model_id`: the unpruned model of the same architecture.
- Geometric means (angle_true, feature_norm, margin, loss, confidence, p_true) use only rows whose
  geometry is finite (`finite`); accuracy uses every row.
- A ratio whose denominator is zero (up to rounding, |d| < 1e-12) is null, never inf or NaN; a
  correlation of a constant is null as well.
- SQL text is built only from this module's constants (column names from fixed allow-lists) and, for the
  free filter, from the fragment store.filters compiled and checked; every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import polars.selectors as cs
import pyarrow as pa
from threadpoolctl import threadpool_limits

from store import layout, uncertainty
from store.catalog import Catalog, QueryError, QueryTimeout
from store.layout import COMMON_CORRUPTIONS, EXTRA_CORRUPTIONS, METRICS  # noqa: F401 (EXTRA: re-exported)

# The same means from the per-partition sums (catalog view partition_summary): no scan of the files.
_CELL_SQL: dict[str, str] = {
    "accuracy": "correct / rows AS value, rows AS samples",
    **{name: f"CASE WHEN finite > 0 THEN {name}_sum / finite END AS value, finite AS samples"
       for name in METRICS if name != "accuracy"},
}
GEOMETRY: tuple[str, ...] = ("angle_true", "feature_norm", "margin")
GROUPINGS: tuple[str, ...] = ("model", "method")

_MODEL_ORDER = "method <> 'dense', method, target_sparsity, model_id"
_SETTING_ORDER = "corruption <> 'clean', corruption, severity"
_EPSILON = 1e-12


# -- small shared pieces ------------------------------------------------------------------------------

def _choice(value: str, allowed: Sequence[str], what: str) -> str:
    """`value` when it is one of `allowed` (so it may be formatted into SQL), else ValueError naming both."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
    return value


def _ratio(numerator: str, denominator: str) -> str:
    """SQL for numerator / denominator, null when the denominator is zero up to rounding."""
    return f"CASE WHEN abs({denominator}) > {_EPSILON} THEN ({numerator}) / ({denominator}) END"


def _defined(expression: str) -> str:
    """SQL for a correlation with NaN (a constant input) turned into null."""
    return f"nullif({expression}, 'NaN'::DOUBLE)"


def _equal_to(**values: object) -> tuple[str, list]:
    """`col = ?` for every keyword whose value is not None, joined by AND (`true` when none are).

    The column names are this module's keyword names, never user text; the values are bound.
    """
    given = {name: value for name, value in values.items() if value is not None}
    sql = " AND ".join(f"{name} = ?" for name in given) or "true"
    return sql, list(given.values())


def _require_models(catalog: Catalog, model_ids: Sequence[str]) -> None:
    """ValueError naming any id that is not in models.parquet (instead of a silently empty answer)."""
    known = set(catalog.query("SELECT model_id FROM models")["model_id"].to_list())
    unknown = [model_id for model_id in model_ids if model_id not in known]
    if unknown:
        raise ValueError(f"unknown model id(s) {unknown}; known: {', '.join(sorted(known))}")


def dense_model(catalog: Catalog) -> str:
    """The study's reference dense model (the first by id); ValueError when the store has none."""
    frame = catalog.query("SELECT model_id FROM models WHERE method = 'dense' ORDER BY model_id LIMIT 1")
    if frame.is_empty():
        raise ValueError("the store has no dense model (method 'dense'); name a model explicitly")
    return frame["model_id"][0]


# -- evaluation matrices ------------------------------------------------------------------------------

def _cells_sql(metric: str) -> str:
    """CTEs `cell` and `model_cell`: the metric's mean per (model, corruption, severity), beside the same
    cell of the model's dense model (`dense_value`) and the model's own clean cell."""
    expression = _CELL_SQL[_choice(metric, list(METRICS), "metric")]
    return f"""
        cell AS (
            SELECT model_id, corruption, severity, {expression}
            FROM partition_summary
        ),
        model_cell AS (
            SELECT c.model_id, m.arch, m.method, m.target_sparsity, m.sparsity, m.dense_model_id, c.corruption,
                   c.severity,
                   c.samples, c.value, d.value AS dense_value, c.value - d.value AS delta_vs_dense,
                   c.value - clean.value AS delta_vs_clean
            FROM cell c
            JOIN models m USING (model_id)
            LEFT JOIN cell d
              ON d.model_id = m.dense_model_id AND d.corruption = c.corruption AND d.severity = c.severity
            LEFT JOIN cell clean ON clean.model_id = c.model_id AND clean.corruption = 'clean'
        )"""  # noqa: S608 (constant SQL)


def metric_matrix(catalog: Catalog, metric: str = "accuracy", group_by: str = "model") -> pl.DataFrame:
    """Mean of `metric` (one of METRICS) per row group x (corruption, severity): the evaluation matrix.

    group_by="model": one row per (model, corruption, severity) with `value` (the mean), `samples`,
    `dense_value` (the dense model's mean in the same cell), `delta_vs_dense` = value - dense_value and
    `delta_vs_clean` = value - the model's clean value.
    group_by="method": one row per (arch, method, target_sparsity, corruption, severity); every column is
    the mean over the group's models (each model weighs the same, e.g. over seeds), `models` counts them.
    Architectures are kept apart so that a study with several never averages across them.
    """
    cells = _cells_sql(metric)
    if _choice(group_by, GROUPINGS, "grouping") == "model":
        select = f"""
            SELECT model_id, arch, method, target_sparsity, sparsity, corruption, severity, samples, value,
                   dense_value, delta_vs_dense, delta_vs_clean
            FROM model_cell ORDER BY {_MODEL_ORDER}, {_SETTING_ORDER}"""  # noqa: S608 (constant SQL)
    else:
        select = f"""
            SELECT arch, method, target_sparsity, corruption, severity, count(*) AS models, sum(samples) AS samples,
                   avg(value) AS value, avg(dense_value) AS dense_value, avg(delta_vs_dense) AS delta_vs_dense,
                   avg(delta_vs_clean) AS delta_vs_clean
            FROM model_cell GROUP BY arch, method, target_sparsity, corruption, severity
            ORDER BY method <> 'dense', method, target_sparsity, arch,
                     {_SETTING_ORDER}"""  # noqa: S608 (constant SQL)
    return catalog.query(f"WITH {cells} {select}")


def accuracy_matrix(catalog: Catalog, group_by: str = "model") -> pl.DataFrame:
    """Accuracy per model (or per (arch, method, target_sparsity)) x (corruption, severity).

    Columns as metric_matrix with `value` -> `accuracy`, `dense_value` -> `dense_accuracy`, plus
    `error` = 1 - accuracy, `drop_vs_dense` = dense_accuracy - accuracy (positive: the model is worse
    than its dense model) and `drop_vs_clean` = clean accuracy - accuracy (what the corruption costs).
    """
    frame = metric_matrix(catalog, "accuracy", group_by)
    return frame.with_columns(
        (1 - pl.col("value")).alias("error"),
        (-pl.col("delta_vs_dense")).alias("drop_vs_dense"),
        (-pl.col("delta_vs_clean")).alias("drop_vs_clean"),
    ).drop("delta_vs_dense", "delta_vs_clean").rename({"value": "accuracy", "dense_value": "dense_accuracy"})


_CORRUPTION_ERRORS = f"""
    per_corruption AS (
        SELECT c.model_id, c.corruption, list_contains($1, c.corruption) AS common, count(*) AS severities,
               avg(c.value) AS accuracy,
               CASE WHEN count(c.dense_value) = count(*) THEN
                   {_ratio("sum(1 - c.value)", "sum(1 - c.dense_value)")} END AS ce,
               CASE WHEN count(c.dense_value) = count(*) THEN
                   {_ratio("sum((1 - c.value) - (1 - clean.value))",
                           "sum((1 - c.dense_value) - (1 - clean.dense_value))")} END AS relative_ce
        FROM model_cell c
        LEFT JOIN model_cell clean ON clean.model_id = c.model_id AND clean.corruption = 'clean'
        WHERE c.corruption <> 'clean'
        GROUP BY ALL
    )"""  # noqa: S608 (constant SQL)


def corruption_errors(catalog: Catalog) -> pl.DataFrame:
    """Per (model, corruption): accuracy (mean over severities), CE_c and relative CE_c.

    With E = error and the base = the model's dense model (reference/cifar10c.md; there is no agreed
    AlexNet row for CIFAR):
        ce          = CE_c = sum_s E(f,s,c) / sum_s E(dense,s,c)
        relative_ce = sum_s (E(f,s,c) - E(f,clean)) / sum_s (E(dense,s,c) - E(dense,clean))
    The sums run over the severities present for the model; both are null when the dense model lacks one
    of them, has no clean row (relative_ce), or when the denominator is zero (e.g. a dense model that
    makes no error). `common` says whether c is one of the 15 COMMON_CORRUPTIONS.
    """
    return catalog.query(f"""
        WITH {_cells_sql("accuracy")}, {_CORRUPTION_ERRORS}
        SELECT p.model_id, m.arch, m.method, m.target_sparsity, m.dense_model_id, p.corruption, p.common,
               p.severities, p.accuracy, 1 - p.accuracy AS error, p.ce, p.relative_ce
        FROM per_corruption p JOIN models m USING (model_id)
        ORDER BY {_MODEL_ORDER}, p.corruption
    """, [list(COMMON_CORRUPTIONS)])  # noqa: S608 (constant SQL)


def model_summary(catalog: Catalog) -> pl.DataFrame:
    """One row per model: the aggregate robustness figures.

    clean_accuracy              accuracy on clean images (from the predictions, not models.parquet)
    corruption_accuracy         mean accuracy over every (corruption, severity) present
    common_corruption_accuracy  the same over the 15 COMMON_CORRUPTIONS (RobustBench's figure); null
                                unless all 15 are present
    clean_drop_vs_dense         dense model's clean accuracy - clean_accuracy
    corruption_drop_vs_dense    dense model's corruption_accuracy (same cells) - corruption_accuracy;
                                null when the dense model lacks one of the cells
    mce, relative_mce           mean of CE_c / relative CE_c over the corruptions present (see
                                corruption_errors); null when any CE_c is null, so that a mean never
                                silently covers fewer corruptions than the model was tested on
    common_mce, common_relative_mce   the same over the 15 COMMON_CORRUPTIONS, null unless all present
    A model without predictions has null figures.
    """
    corrupted = "WHERE corruption <> 'clean'"
    common = "WHERE list_contains($1, corruption)"
    return catalog.query(f"""
        WITH {_cells_sql("accuracy")}, {_CORRUPTION_ERRORS},
        per_model AS (
            SELECT model_id,
                   any_value(value) FILTER (WHERE corruption = 'clean') AS clean_accuracy,
                   any_value(dense_value) FILTER (WHERE corruption = 'clean') AS dense_clean_accuracy,
                   avg(value) FILTER ({corrupted}) AS corruption_accuracy,
                   CASE WHEN count(dense_value) FILTER ({corrupted}) = count(*) FILTER ({corrupted})
                        THEN avg(dense_value) FILTER ({corrupted}) END AS dense_corruption_accuracy,
                   CASE WHEN count(DISTINCT corruption) FILTER ({common}) = len($1)
                        THEN avg(value) FILTER ({common}) END AS common_corruption_accuracy
            FROM model_cell GROUP BY model_id
        ),
        per_model_ce AS (
            SELECT model_id,
                   CASE WHEN count(ce) = count(*) THEN avg(ce) END AS mce,
                   CASE WHEN count(relative_ce) = count(*) THEN avg(relative_ce) END AS relative_mce,
                   CASE WHEN count(ce) FILTER (WHERE common) = len($1)
                        THEN avg(ce) FILTER (WHERE common) END AS common_mce,
                   CASE WHEN count(relative_ce) FILTER (WHERE common) = len($1)
                        THEN avg(relative_ce) FILTER (WHERE common) END AS common_relative_mce
            FROM per_corruption GROUP BY model_id
        )
        SELECT m.model_id, m.arch, m.method, m.target_sparsity, m.sparsity, m.dense_model_id,
               pm.clean_accuracy, pm.corruption_accuracy, pm.common_corruption_accuracy,
               pm.dense_clean_accuracy - pm.clean_accuracy AS clean_drop_vs_dense,
               pm.dense_corruption_accuracy - pm.corruption_accuracy AS corruption_drop_vs_dense,
               ce.mce, ce.relative_mce, ce.common_mce, ce.common_relative_mce
        FROM models m
        LEFT JOIN per_model pm USING (model_id)
        LEFT JOIN per_model_ce ce USING (model_id)
        ORDER BY {_MODEL_ORDER}
    """, [list(COMMON_CORRUPTIONS)])  # noqa: S608 (constant SQL)


# -- geometry -----------------------------------------------------------------------------------------

def geometry_summary(catalog: Catalog, *, by_correct: bool = False, model_id: str | None = None,
                     corruption: str | None = None, severity: int | None = None) -> pl.DataFrame:
    """Distribution of angle_true, feature_norm and margin per (model, corruption, severity, class).

    For each metric: `<metric>_mean`, `_std` (sample standard deviation, null for one sample), `_p10`,
    `_p50`, `_p90` (linearly interpolated quantiles); `samples` counts the rows (finite geometry only).
    by_correct=True splits every group further by `correct`. model_id / corruption / severity restrict
    the rows (quantiles over the whole study are costly: restrict when you can).
    """
    where, params = _equal_to(model_id=model_id, corruption=corruption, severity=severity)
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
        ORDER BY model_id, {_SETTING_ORDER}, label{split}
    """, params)  # noqa: S608 (constant SQL)


# -- agreement between models, redundancy between corruptions -----------------------------------------

# Per compared column, the columns that, with sample_id, say which predictions of two items match up.
_PAIRED_WITHIN: dict[str, tuple[str, ...]] = {
    "model_id": ("corruption", "severity"),
    "corruption": ("model_id", "severity"),
}
_PAIR_BLOCK = 1 << 16  # rows per block of the Gram products (bounds the float64 temporaries)


def _pair_statistics(catalog: Catalog, item: str, where: str, params: Sequence[object]) -> pl.DataFrame:
    """Compare every pair a < b of `item` values (model ids or corruptions) on the predictions they share.

    Two predictions are paired when they agree on _PAIRED_WITHIN[item] and sample_id. Per pair: samples
    (shared predictions), both_right, both_wrong, agreement = both_right + both_wrong, kappa = Cohen's
    kappa of the two correctness columns, (agreement - chance) / (1 - chance) with chance =
    r_a r_b + (1 - r_a)(1 - r_b) and r = accuracy on the shared predictions, correctness_correlation (phi
    coefficient), angle_true_correlation (Pearson, over shared predictions with finite geometry).
    Undefined values (a constant input) are null.

    Computed as Gram matrices: one pass puts the predictions in a (setting x sample) by item array, and
    a few matrix products give every pair's sums at once. A SQL self-join does the same work per pair and
    took 84 s for 20 models x 96 settings x 10,000 samples; this takes a few seconds.
    """
    within = ", ".join(_PAIRED_WITHIN[item])
    distinct = f"SELECT DISTINCT {item} AS item FROM predictions WHERE {where} ORDER BY item"  # noqa: S608 (constant SQL)
    items = catalog.query(distinct, params)["item"].to_list()
    frame = catalog.query(f"""
        WITH side AS (
            SELECT {item} AS item, {within}, sample_id, correct, CASE WHEN finite THEN angle_true END AS angle_true
            FROM predictions WHERE {where}
        ),
        groups AS (
            SELECT {within}, (row_number() OVER (ORDER BY {within}) - 1)::BIGINT AS group_index
            FROM (SELECT DISTINCT {within} FROM side)
        )
        SELECT (list_position(?, item) - 1)::INTEGER AS item_index,
               group_index * (SELECT max(sample_id) + 1 FROM side) + sample_id AS slot, correct, angle_true
        FROM side JOIN groups USING ({within})
    """, [*params, items])  # noqa: S608 (constant SQL)
    sums = _gram_sums(frame, len(items))
    a, b = np.triu_indices(len(items), k=1)
    n, right_a, right_b = sums["n"][a, b], sums["right"][a, b], sums["right"][b, a]
    both_right = sums["both_right"][a, b]
    with np.errstate(divide="ignore", invalid="ignore"):
        both_wrong = n - right_a - right_b + both_right
        agreement = (both_right + both_wrong) / n
        chance = (right_a * right_b + (n - right_a) * (n - right_b)) / n**2
        kappa = _safe_divide(agreement - chance, 1 - chance)
        phi = _safe_divide(n * both_right - right_a * right_b,
                           np.sqrt(right_a * (n - right_a) * right_b * (n - right_b)))
        m, sx_a, sx_b = sums["m"][a, b], sums["sx"][a, b], sums["sx"][b, a]
        pearson = _safe_divide(m * sums["sxy"][a, b] - sx_a * sx_b,
                               np.sqrt((m * sums["sxx"][a, b] - sx_a**2) * (m * sums["sxx"][b, a] - sx_b**2)))
        result = pl.DataFrame({
            "item_a": [items[i] for i in a], "item_b": [items[i] for i in b], "samples": n.astype(np.int64),
            "both_right": both_right / n, "both_wrong": both_wrong / n, "agreement": agreement, "kappa": kappa,
            "correctness_correlation": phi, "angle_true_correlation": pearson,
        }, schema_overrides={"item_a": pl.String, "item_b": pl.String})
    return result.filter(pl.col("samples") > 0).with_columns(cs.float().fill_nan(None))


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN (later null) where the denominator is zero up to rounding."""
    return np.where(np.abs(denominator) > _EPSILON, numerator / np.where(denominator == 0, 1, denominator), np.nan)


def _gram_sums(frame: pl.DataFrame, num_items: int) -> dict[str, np.ndarray]:
    """Pairwise sums over shared slots, as (item x item) matrices, from rows (item_index, slot, correct,
    angle_true). n[a, b]: slots both have; right[a, b]: of those, a right; both_right; m: slots where both
    angles are finite; sx[a, b]: sum of a's centred angle over those; sxx: of its square; sxy: of a's times
    b's. Angles are centred per item first (Pearson is shift invariant; it keeps the sums well conditioned).
    """
    slots = int(frame["slot"].max()) + 1 if frame.height else 0
    item = frame["item_index"].to_numpy()
    slot = frame["slot"].to_numpy()
    present = np.zeros((slots, num_items), bool)
    correct = np.zeros((slots, num_items), bool)
    angle = np.full((slots, num_items), np.nan, np.float32)
    present[slot, item] = True
    correct[slot, item] = frame["correct"].to_numpy()
    angle[slot, item] = frame["angle_true"].fill_null(np.nan).to_numpy()
    centre = np.nansum(angle, axis=0, dtype=np.float64) / np.maximum((~np.isnan(angle)).sum(axis=0), 1)
    names = ("n", "right", "both_right", "m", "sx", "sxx", "sxy")
    sums = {name: np.zeros((num_items, num_items)) for name in names}
    # Tall, thin products: one BLAS thread is fastest, and threaded OpenBLAS slows down ~100x when the
    # cores are busy (measured: 3 s instead of 5 ms per block on 2 shared cores).
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, slots, _PAIR_BLOCK):
            block = slice(start, start + _PAIR_BLOCK)
            shared = present[block].astype(np.float64)
            right = correct[block].astype(np.float64)
            finite = (~np.isnan(angle[block])).astype(np.float64)
            x = np.nan_to_num(angle[block].astype(np.float64) - centre)
            sums["n"] += shared.T @ shared
            sums["right"] += right.T @ shared
            sums["both_right"] += right.T @ right
            sums["m"] += finite.T @ finite
            sums["sx"] += x.T @ finite
            sums["sxx"] += (x * x).T @ finite
            sums["sxy"] += x.T @ x
    return sums


def model_agreement(catalog: Catalog, corruption: str | None = None, severity: int | None = None) -> pl.DataFrame:
    """Every pair of models (model_a < model_b) compared on the same samples and settings.

    Columns: samples, both_right, both_wrong, agreement, kappa (Cohen's kappa of correctness),
    correctness_correlation (phi), angle_true_correlation (Pearson over per-sample angle_true); see
    _pair_statistics. Without a corruption / severity every shared (corruption, severity, sample) counts.
    """
    where, params = _equal_to(corruption=corruption, severity=severity)
    return (_pair_statistics(catalog, "model_id", where, params)
            .rename({"item_a": "model_a", "item_b": "model_b"}))


def corruption_redundancy(catalog: Catalog, severity: int | None = None) -> pl.DataFrame:
    """Every pair of corruptions (corruption_a < corruption_b): how alike they affect the models.

    drop_correlation: Pearson correlation, across models, of each model's accuracy drop under the two
    corruptions (drop = clean accuracy - accuracy, averaged over the severities; at `severity` only when
    given), with `models` the number of models in it. Averaging over severities keeps the correlation
    about which models suffer, not about severity making everything worse.
    Per-sample columns as model_agreement (both_right, ..., kappa, correctness_correlation,
    angle_true_correlation), pairing the same model, severity and sample under the two corruptions.
    Near-duplicate corruptions (e.g. two blurs) show correlations and kappa near 1.
    """
    where, params = _equal_to(severity=severity)
    drops = catalog.query(f"""
        WITH {_cells_sql("accuracy")},
        drops AS (
            SELECT model_id, corruption, avg(-delta_vs_clean) AS drop
            FROM model_cell WHERE corruption <> 'clean' AND {where}
            GROUP BY ALL
        )
        SELECT a.corruption AS item_a, b.corruption AS item_b, count(*) AS models,
               {_defined("corr(a.drop, b.drop)")} AS drop_correlation
        FROM drops a JOIN drops b USING (model_id)
        WHERE a.corruption < b.corruption
        GROUP BY ALL
    """, params)  # noqa: S608 (constant SQL)
    samples = _pair_statistics(catalog, "corruption", f"corruption <> 'clean' AND {where}", params)
    return (drops.join(samples, on=["item_a", "item_b"], how="inner")
            .rename({"item_a": "corruption_a", "item_b": "corruption_b"})
            .sort("corruption_a", "corruption_b"))


def square_matrix(pairs: pl.DataFrame, value: str, diagonal: float = 1.0) -> tuple[pl.DataFrame, list[str]]:
    """A long frame of pairs (first two columns: the items, as model_agreement and corruption_redundancy
    return them) -> the symmetric matrix of `value` and the items in hierarchical-clustering order.

    `value` must be a similarity that is `diagonal` for an item with itself (kappa, agreement, a
    correlation). The order comes from average-linkage clustering (scipy, optimal leaf ordering) on the
    distance 1 - value, a null value counting as no similarity (distance 1); similar items end up next to
    each other, so near-duplicates show as blocks. The frame has a column `item` and one column per item,
    rows and columns both in that order.
    """
    item_a, item_b = pairs.columns[:2]
    items = sorted(set(pairs[item_a].to_list()) | set(pairs[item_b].to_list()))
    index = {item: i for i, item in enumerate(items)}
    matrix = np.full((len(items), len(items)), np.nan)
    np.fill_diagonal(matrix, diagonal)
    for a, b, v in pairs.select(item_a, item_b, value).iter_rows():
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = np.nan if v is None else v
    if len(items) > 2:
        distance = np.clip(diagonal - np.nan_to_num(matrix, nan=diagonal - 1.0), 0.0, None)
        np.fill_diagonal(distance, 0.0)
        from scipy.cluster import hierarchy  # a second to import: only when a heat map is ordered
        from scipy.spatial.distance import squareform

        tree = hierarchy.linkage(squareform(distance, checks=False), method="average", optimal_ordering=True)
        order = [int(i) for i in hierarchy.leaves_list(tree)]
    else:
        order = list(range(len(items)))
    ordered = matrix[np.ix_(order, order)]
    names = [items[i] for i in order]
    frame = pl.DataFrame({"item": names, **{name: ordered[:, j] for j, name in enumerate(names)}})
    return frame.with_columns(pl.col(names).fill_nan(None)), names


# -- vectors for the similarity and embedding views ----------------------------------------------------

def _settings_filter(corruptions: Sequence[str], severities: Sequence[int] | None) -> tuple[str, list]:
    """SQL and params choosing the corruptions and, for corrupted ones, the severities (None: all)."""
    sql, params = "list_contains(?, corruption)", [list(corruptions)]
    if severities is not None:
        sql += " AND (corruption = 'clean' OR list_contains(?, severity))"
        params.append([int(s) for s in severities])
    return sql, params


def model_vectors(catalog: Catalog, corruptions: Sequence[str] = (layout.CLEAN,),
                  severities: Sequence[int] | None = None) -> pl.DataFrame:
    """Each model as one long vector of its per-sample geometry, for the similarity view (paper, view 2).

    The vector is angle_true, then feature_norm, then margin, each over every (corruption, severity,
    sample) chosen (in that order; severities apply to the corrupted settings, clean is kept when named),
    keeping only the (setting, sample) pairs every chosen model has so that positions line up across
    models. Each metric is z-scored over all models and samples together, (x - mean) / std, so the three
    weigh alike while differences between models (e.g. a larger mean angle) survive; a non-finite value
    becomes 0 (the mean). Columns: model_id, arch, method, target_sparsity, samples (vector length / 3),
    vector (list of float32).
    """
    where, params = _settings_filter(corruptions, severities)
    stats = ", ".join(f"avg({m}) FILTER (WHERE finite) AS {m}_mean, stddev_pop({m}) FILTER (WHERE finite) AS {m}_std"
                      for m in GEOMETRY)
    scored = ", ".join(f"coalesce(CASE WHEN finite THEN ({m} - {m}_mean) / nullif({m}_std, 0) END, 0)::FLOAT AS {m}"
                       for m in GEOMETRY)
    vector = " || ".join(f"list({m} ORDER BY corruption, severity, sample_id)" for m in GEOMETRY)
    return catalog.query(f"""
        WITH chosen AS (
            SELECT model_id, corruption, severity, sample_id, finite, {", ".join(GEOMETRY)}
            FROM predictions WHERE {where}
        ),
        shared AS (
            SELECT corruption, severity, sample_id FROM chosen GROUP BY ALL
            HAVING count(*) = (SELECT count(DISTINCT model_id) FROM chosen)
        ),
        kept AS (SELECT * FROM chosen SEMI JOIN shared USING (corruption, severity, sample_id)),
        stats AS (SELECT {stats} FROM kept),
        scored AS (SELECT model_id, corruption, severity, sample_id, {scored} FROM kept, stats)
        SELECT s.model_id, m.arch, m.method, m.target_sparsity, count(*) AS samples, {vector} AS vector
        FROM scored s JOIN models m USING (model_id)
        GROUP BY s.model_id, m.arch, m.method, m.target_sparsity
        ORDER BY {_MODEL_ORDER}
    """, params)  # noqa: S608 (constant SQL)


def sample_vectors(catalog: Catalog, model_ids: Sequence[str], corruption: str = layout.CLEAN,
                   severity: int = 0) -> pl.DataFrame:
    """Per-sample geometry of the given models in one setting, for the feature embedding.

    Columns: model_id, corruption, severity, sample_id, label, label_name, correct, feature_norm, angles
    (one angle per class, degrees; Catalog.class_angles_sql: classes a top-k store does not keep count as
    90). Rows with non-finite geometry are left out. The store keeps no raw features, so (angles,
    feature_norm) stands in for them: the feature's length and its direction relative to every class's
    weight row, which is what the classifier sees of it.
    """
    _require_models(catalog, model_ids)
    angles = catalog.class_angles_sql(every_class=True)
    return catalog.query(f"""
        SELECT p.model_id, p.corruption, p.severity, p.sample_id, p.label, s.label_name, p.correct,
               p.feature_norm, {angles} AS angles
        FROM class_values p JOIN samples s USING (sample_id)
        WHERE list_contains(?, p.model_id) AND p.corruption = ? AND p.severity = ? AND p.finite
        ORDER BY p.model_id, p.sample_id
    """, [list(model_ids), corruption, int(severity)])  # noqa: S608 (constant SQL)


def _read_embedding(catalog: Catalog, name: str, arrow_schema: pa.Schema, where: str = "true",
                    params: Sequence[object] = ()) -> pl.DataFrame:
    """A file under embeddings/ (written by `python -m compute embed`), or an empty frame of its layout."""
    path: Path = catalog.root / layout.EMBEDDINGS / name
    if not path.is_file():
        return pl.from_arrow(arrow_schema.empty_table())
    columns = ", ".join(arrow_schema.names)  # the file's own schema: fixed names
    sql = f"SELECT {columns} FROM read_parquet(?) WHERE {where}"  # noqa: S608 (constant SQL)
    return catalog.query(sql, [str(path), *params])


def model_embedding(catalog: Catalog) -> pl.DataFrame:
    """2-D coordinates of every model (UMAP of model_vectors, or PCA: column `projection` says which)."""
    return _read_embedding(catalog, layout.MODEL_EMBEDDING, layout.MODEL_EMBEDDING_SCHEMA)


def model_tree(catalog: Catalog) -> pl.DataFrame:
    """Edges (source, target, distance) of the minimum spanning tree over the model vectors."""
    return _read_embedding(catalog, layout.MODEL_TREE, layout.MODEL_TREE_SCHEMA)


def sample_embedding(catalog: Catalog, model_id: str | None = None) -> pl.DataFrame:
    """2-D coordinates of per-sample geometry (see sample_vectors), optionally of one model only."""
    where, params = _equal_to(model_id=model_id)
    return _read_embedding(catalog, layout.SAMPLE_EMBEDDING, layout.SAMPLE_EMBEDDING_SCHEMA, where, params)


# -- preset sample filters -----------------------------------------------------------------------------

def _with_labels(catalog: Catalog, hits: str, params: Sequence[object], order: str) -> pl.DataFrame:
    """Run `hits` (a query with a sample_id column) and put sample_id, label, label_name in front."""
    return catalog.query(f"""
        WITH hits AS ({hits})
        SELECT s.sample_id, s.label, s.label_name, hits.* EXCLUDE (sample_id)
        FROM hits JOIN samples s USING (sample_id)
        ORDER BY {order}
    """, params)  # noqa: S608 (constant SQL)


def pruning_fragile(catalog: Catalog, k: int = 1, corruption: str = layout.CLEAN, severity: int = 0) -> pl.DataFrame:
    """Samples the dense model gets right and at least `k` pruned models get wrong, in one setting.

    In the spirit of Hooker et al. 2019's pruning identified exemplars: what pruning costs, sample by
    sample. Each pruned model is judged against its own dense model (same architecture), so a pruned
    model counts only on samples its dense model classifies correctly. Columns: pruned_wrong (pruned
    models wrong), pruned_models (pruned models whose dense model is right), dense_angle_true and
    pruned_angle_true (mean over those pruned models): the angle pruning added. Most-wrong first.
    """
    hits = """
        WITH setting AS (
            SELECT model_id, sample_id, correct, angle_true FROM predictions WHERE corruption = ? AND severity = ?
        )
        SELECT p.sample_id, count(*) FILTER (WHERE NOT p.correct) AS pruned_wrong, count(*) AS pruned_models,
               avg(d.angle_true) AS dense_angle_true, avg(p.angle_true) AS pruned_angle_true
        FROM setting p
        JOIN models m USING (model_id)
        JOIN setting d ON d.model_id = m.dense_model_id AND d.sample_id = p.sample_id
        WHERE m.method <> 'dense' AND d.correct
        GROUP BY p.sample_id
        HAVING count(*) FILTER (WHERE NOT p.correct) >= ?
    """
    return _with_labels(catalog, hits, [corruption, int(severity), int(k)], "pruned_wrong DESC, sample_id")


def corruption_fragile(catalog: Catalog, corruption: str, max_severity: int = 5,
                       model_id: str | None = None) -> pl.DataFrame:
    """Samples one model gets right on clean images and wrong under `corruption` at some severity <= s.

    The model is the dense model by default (dense_model: what the corruption does before any pruning;
    pass a pruned model's id to ask the same of it). Columns: first_wrong_severity (the mildest severity
    that breaks it), wrong_severities (how many of the severities up to s are wrong), clean_margin and
    worst_margin (smallest margin under the corruption). Mildest breakage first.
    """
    model_id = model_id or dense_model(catalog)
    _require_models(catalog, [model_id])
    hits = """
        WITH chosen AS (
            SELECT sample_id, corruption = 'clean' AS clean, severity, correct, margin FROM predictions
            WHERE model_id = ? AND (corruption = 'clean' OR (corruption = ? AND severity <= ?))
        )
        SELECT sample_id, min(severity) FILTER (WHERE NOT clean AND NOT correct) AS first_wrong_severity,
               count(*) FILTER (WHERE NOT clean AND NOT correct) AS wrong_severities,
               any_value(margin) FILTER (WHERE clean) AS clean_margin,
               min(margin) FILTER (WHERE NOT clean) AS worst_margin
        FROM chosen
        GROUP BY sample_id
        HAVING bool_and(correct) FILTER (WHERE clean) AND count(*) FILTER (WHERE NOT clean AND NOT correct) > 0
    """
    return _with_labels(catalog, hits, [model_id, corruption, int(max_severity)],
                        "first_wrong_severity, wrong_severities DESC, sample_id")


def robust(catalog: Catalog, max_severity: int = 5) -> pl.DataFrame:
    """Samples every model gets right, clean and under every corruption up to severity `max_severity`.

    Columns: predictions (how many (model, setting) rows were checked), min_margin (the closest any
    model came to the decision boundary) and max_angle_true. Tightest first.
    """
    hits = f"""
        SELECT sample_id, count(*) AS predictions, min(margin) AS min_margin, max(angle_true) AS max_angle_true
        FROM {catalog.by_sample} WHERE severity <= ?
        GROUP BY sample_id
        HAVING bool_and(correct)
    """  # noqa: S608 (a fixed view name)
    return _with_labels(catalog, hits, [int(max_severity)], "min_margin, sample_id")


def flipped_by_pruning(catalog: Catalog, model_a: str, model_b: str, corruption: str = layout.CLEAN,
                       severity: int = 0) -> pl.DataFrame:
    """Samples `model_a` gets right and `model_b` gets wrong in one setting (e.g. dense vs a pruned model).

    Columns: pred_b (model_b's wrong class), angle_true_a / angle_true_b, margin_a / margin_b. Largest
    change in angle first.
    """
    _require_models(catalog, [model_a, model_b])
    hits = """
        WITH setting AS (
            SELECT model_id, sample_id, pred, correct, angle_true, margin FROM predictions
            WHERE corruption = ? AND severity = ?
        )
        SELECT a.sample_id, b.pred AS pred_b, a.angle_true AS angle_true_a, b.angle_true AS angle_true_b,
               a.margin AS margin_a, b.margin AS margin_b
        FROM setting a JOIN setting b USING (sample_id)
        WHERE a.model_id = ? AND b.model_id = ? AND a.correct AND NOT b.correct
    """
    return _with_labels(catalog, hits, [corruption, int(severity), model_a, model_b],
                        "angle_true_b - angle_true_a DESC, sample_id")


_MODAL_PREDICTIONS = f"""
    WITH setting AS (
        SELECT p.sample_id, p.label, p.pred, {uncertainty.GROUP_ID} AS group_id, m.arch, m.method,
               m.target_sparsity, m.model_id
        FROM predictions p JOIN models m USING (model_id)
        WHERE p.corruption = ? AND p.severity = ?
    ),
    replicates AS (SELECT group_id, count(DISTINCT model_id) AS replicates FROM setting GROUP BY group_id),
    votes AS (SELECT group_id, arch, method, target_sparsity, sample_id, label, pred, count(*) AS votes
              FROM setting GROUP BY ALL),
    modal AS (
        SELECT group_id, arch, method, target_sparsity, sample_id, label,
               first(pred ORDER BY votes DESC, pred) AS modal_pred
        FROM votes GROUP BY ALL
    ),
    pie AS (
        SELECT p.group_id, p.arch, p.method, p.target_sparsity, r.replicates, dr.replicates AS dense_replicates,
               p.sample_id, p.label, d.modal_pred AS dense_modal_pred, p.modal_pred AS pruned_modal_pred
        FROM modal p
        JOIN modal d ON d.arch = p.arch AND d.method = 'dense' AND d.sample_id = p.sample_id
        JOIN replicates r ON r.group_id = p.group_id
        JOIN replicates dr ON dr.group_id = d.group_id
        WHERE p.method <> 'dense' AND p.modal_pred <> d.modal_pred
    )"""  # noqa: S608 (constant SQL)


def pruning_identified_exemplars(catalog: Catalog, corruption: str = layout.CLEAN, severity: int = 0,
                                 method: str | None = None, target_sparsity: float | None = None) -> pl.DataFrame:
    """Pruning-identified exemplars (Hooker et al. 2019, "What do compressed deep neural networks
    forget?"): samples whose modal prediction over the pruned replicates of a (arch, method, sparsity)
    group differs from the modal prediction over the dense replicates of the same architecture, in one
    setting. Ties between classes go to the smaller class index.

    With one seed per group the "modal prediction" is the single model's prediction, so the preset
    reduces to "flipped by pruning" (any change of prediction, right or wrong). Columns: group_id, method,
    target_sparsity, replicates, dense_replicates, dense_modal_pred, pruned_modal_pred. Optionally one
    method and sparsity only.
    """
    where, params = _equal_to(method=method, target_sparsity=target_sparsity)
    hits = f"{_MODAL_PREDICTIONS} SELECT * EXCLUDE (arch, label) FROM pie WHERE {where}"  # noqa: S608
    return _with_labels(catalog, hits, [corruption, int(severity), *params],
                        "method, target_sparsity, group_id, sample_id")


def pie_counts(catalog: Catalog, corruption: str = layout.CLEAN, severity: int = 0) -> pl.DataFrame:
    """Per pruned (arch, method, target_sparsity) group: how many samples are pruning-identified
    exemplars in one setting (see pruning_identified_exemplars), its `replicates` and the dense model's
    `dense_replicates`; `single_seed` is true where either side has one seed (PIE = flipped by pruning).
    Groups without any PIE count 0."""
    sql = f"""
        {_MODAL_PREDICTIONS},
        groups AS (SELECT DISTINCT s.group_id, s.arch, s.method, s.target_sparsity, r.replicates
                   FROM setting s JOIN replicates r USING (group_id)),
        counted AS (SELECT group_id, count(*) AS pie_samples FROM pie GROUP BY group_id)
        SELECT g.group_id, g.arch, g.method, g.target_sparsity, g.replicates, d.replicates AS dense_replicates,
               coalesce(c.pie_samples, 0) AS pie_samples,
               g.replicates = 1 OR coalesce(d.replicates, 1) = 1 AS single_seed
        FROM groups g
        LEFT JOIN groups d ON d.arch = g.arch AND d.method = 'dense'
        LEFT JOIN counted c ON c.group_id = g.group_id
        WHERE g.method <> 'dense'
        ORDER BY g.method, g.target_sparsity, g.group_id
    """  # noqa: S608 (constant SQL)
    return catalog.query(sql, [corruption, int(severity)])


PRESETS: dict[str, tuple[Callable[..., pl.DataFrame], str]] = {
    "pruning_fragile": (pruning_fragile, "right for the dense model, wrong for at least k pruned models"),
    "corruption_fragile": (corruption_fragile, "right on clean images, wrong under a corruption up to a severity"),
    "robust": (robust, "right for every model under every corruption up to a severity"),
    "flipped_by_pruning": (flipped_by_pruning, "right for one model, wrong for another, in one setting"),
    "pruning_identified_exemplars": (pruning_identified_exemplars,
                                     "modal prediction of the pruned seeds differs from the dense seeds' (Hooker "
                                     "et al. 2019); with one seed this is flipped by pruning"),
}


# -- free filter ---------------------------------------------------------------------------------------

_ROW_COLUMNS = ", ".join(layout.FILTER_COLUMNS)  # the columns a filter may name: a fixed allow-list


def _filtered(catalog: Catalog, text: str, select: str, tail: str, tail_params: Sequence[object],
              timeout: float) -> pl.DataFrame:
    """`SELECT <select> FROM rows WHERE <compiled filter> <tail>`; a run-time type error -> FilterError."""
    # sqlglot is imported by the first filter, not by the first page of a fresh server
    from store.filters import FilterError, compile_filter

    where, params = compile_filter(text)
    sql = f"SELECT {select} FROM rows WHERE {where} {tail}"  # noqa: S608 (checked filter, constant SQL)
    try:
        return catalog.query(sql, [*params, *tail_params], timeout=timeout)
    except QueryTimeout:
        raise
    except QueryError as error:
        message = str(error).split(": ", 1)[-1]
        raise FilterError(f"the filter could not run: {message}") from error


def filter_rows(catalog: Catalog, text: str, limit: int = 500, timeout: float = 5.0) -> pl.DataFrame:
    """The first `limit` prediction rows matching a user's filter (store.filters grammar), every filterable
    column, ordered by model, setting and sample.

    FilterError for text outside the grammar or a filter DuckDB cannot evaluate (e.g. text compared with a
    number); store.catalog.QueryTimeout after `timeout` seconds.
    """
    order = "ORDER BY model_id, corruption <> 'clean', corruption, severity, sample_id LIMIT ?"
    return _filtered(catalog, text, _ROW_COLUMNS, order, [int(limit)], timeout)


def count_rows(catalog: Catalog, text: str, timeout: float = 5.0) -> int:
    """How many prediction rows match the filter (same errors as filter_rows)."""
    return int(_filtered(catalog, text, "count(*) AS matches", "", [], timeout)["matches"][0])
