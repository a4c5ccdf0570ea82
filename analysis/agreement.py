"""Agreement between models and redundancy between corruptions, compared sample by sample, and the
clustered square matrices the similarity page draws from them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import polars.selectors as cs
from threadpoolctl import threadpool_limits

from analysis import stats
from analysis.matrices import cells_sql
from analysis.sql import EPSILON, defined, equal_to
from store import derived_record, layout
from store.catalog import Catalog
from store.vocabulary import sql_literal

# Per compared column, the columns that, with sample_id, say which predictions of two items match up.
_PAIRED_WITHIN: dict[str, tuple[str, ...]] = {
    "model_id": ("corruption", "severity"),
    "corruption": ("model_id", "severity"),
}
KAPPA_RESAMPLES = 1000
_PAIR_BLOCK = 1 << 16  # rows per block of the Gram products (bounds the float64 temporaries)


def _pair_statistics(catalog: Catalog, item: str, where: str, params: Sequence[object]) -> pl.DataFrame:
    """Compare every pair a < b of `item` values (model ids or corruptions) on the predictions they share.

    Two predictions are paired when they agree on _PAIRED_WITHIN[item] and sample_id. Per pair: samples
    (shared predictions), both_right, both_wrong, agreement = both_right + both_wrong, kappa = Cohen's
    kappa of the two correctness columns, (agreement - chance) / (1 - chance) with chance =
    r_a r_b + (1 - r_a)(1 - r_b) and r = accuracy on the shared predictions, with its 95 % bootstrap
    interval over the shared predictions (kappa_low/high, stats.kappa_interval) and beyond_chance (the
    interval excludes 0: the agreement differs from what the two accuracies alone give),
    correctness_correlation (phi coefficient), angle_true_correlation (Pearson, over shared predictions
    with finite geometry).
    Undefined values (a constant input) are null.

    Computed as Gram matrices: one pass puts the predictions in a (setting x sample) by item array, and
    a few matrix products give every pair's sums at once. A SQL self-join does the same work per pair and
    took 84 s for 20 models x 96 settings x 10,000 samples; this takes a few seconds.
    """
    within = ", ".join(_PAIRED_WITHIN[item])
    distinct = f"SELECT DISTINCT {item} AS item FROM predictions WHERE {where} ORDER BY item"  # noqa: S608 (constant SQL)
    items = catalog.query(distinct, params, name="pair_statistics.items")["item"].to_list()
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
    """, [*params, items], name="pair_statistics")  # noqa: S608 (constant SQL)
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
        _, kappa_low, kappa_high = stats.kappa_interval(both_right, right_a - both_right, right_b - both_right,
                                                        both_wrong, resamples=KAPPA_RESAMPLES)
        result = pl.DataFrame({
            "item_a": [items[i] for i in a], "item_b": [items[i] for i in b], "samples": n.astype(np.int64),
            "both_right": both_right / n, "both_wrong": both_wrong / n, "agreement": agreement, "kappa": kappa,
            "kappa_low": kappa_low, "kappa_high": kappa_high,
            "correctness_correlation": phi, "angle_true_correlation": pearson,
        }, schema_overrides={"item_a": pl.String, "item_b": pl.String})
    beyond = (pl.col("kappa_low") > 0) | (pl.col("kappa_high") < 0)
    return result.filter(pl.col("samples") > 0).with_columns(cs.float().fill_nan(None)).with_columns(
        beyond.alias("beyond_chance"))


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN (later null) where the denominator is zero up to rounding."""
    return np.where(np.abs(denominator) > EPSILON, numerator / np.where(denominator == 0, 1, denominator), np.nan)


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


STORED_VERSION = 1  # raise when the stored agreement is computed another way than model_agreement below


def stored_definition() -> str:
    """The digest of what computes the stored per-setting agreement (index/agreement.parquet's record)."""
    return derived_record.digest(layout.AGREEMENT_RECORD, STORED_VERSION, KAPPA_RESAMPLES)


def model_agreement(catalog: Catalog, corruption: str | None = None, severity: int | None = None) -> pl.DataFrame:
    """Every pair of models (model_a < model_b) compared on the same samples and settings.

    Columns: samples, both_right, both_wrong, agreement, kappa (Cohen's kappa of correctness) with
    kappa_low/high and beyond_chance, correctness_correlation (phi), angle_true_correlation (Pearson over per-sample angle_true); see
    _pair_statistics. Without a corruption / severity every shared (corruption, severity, sample) counts.
    In one setting, read from index/agreement.parquet when `compute index` stored it and it is fresh (the
    same rows: the bootstrap is seeded), else computed here.
    """
    if corruption is not None and severity is not None and catalog.is_fresh(layout.AGREEMENT_RECORD,
                                                                            stored_definition()):
        path = sql_literal(catalog.root / layout.INDEX / layout.AGREEMENT)
        return catalog.query(f"SELECT * EXCLUDE (corruption, severity) FROM read_parquet({path}) "  # noqa: S608 (store path)
                             "WHERE corruption = ? AND severity = ? ORDER BY model_a, model_b",
                             [corruption, severity], name="model_agreement.stored")
    return computed_agreement(catalog, corruption, severity)


def computed_agreement(catalog: Catalog, corruption: str | None = None, severity: int | None = None) -> pl.DataFrame:
    """model_agreement computed from the predictions (what index/agreement.parquet stores per setting)."""
    where, params = equal_to(corruption=corruption, severity=severity)
    return (_pair_statistics(catalog, "model_id", where, params)
            .rename({"item_a": "model_a", "item_b": "model_b"}))


def corruption_drop_correlation(catalog: Catalog, severity: int | None = None) -> pl.DataFrame:
    """Every pair of corruptions (corruption_a < corruption_b): drop_correlation, the Pearson correlation
    across models of each model's accuracy drop under the two corruptions (drop = clean accuracy -
    accuracy, averaged over the severities; at `severity` only when given), with `models` the number of
    models in it. Averaging over severities keeps the correlation about which models suffer, not about
    severity making everything worse. From the per-partition counts (catalog view partition_summary), not
    a pass over the predictions, so it stays fast on a large study.
    """
    where, params = equal_to(severity=severity)
    return catalog.query(f"""
        WITH {cells_sql("accuracy")},
        drops AS (
            SELECT model_id, corruption, avg(-delta_vs_clean) AS drop
            FROM model_cell WHERE corruption <> 'clean' AND {where}
            GROUP BY ALL
        )
        SELECT a.corruption AS corruption_a, b.corruption AS corruption_b, count(*) AS models,
               {defined("corr(a.drop, b.drop)")} AS drop_correlation
        FROM drops a JOIN drops b USING (model_id)
        WHERE a.corruption < b.corruption
        GROUP BY ALL
        ORDER BY corruption_a, corruption_b
    """, params, name="corruption_drop_correlation")  # noqa: S608 (constant SQL)


def corruption_redundancy(catalog: Catalog, severity: int | None = None) -> pl.DataFrame:
    """Every pair of corruptions (corruption_a < corruption_b): how alike they affect the models.

    drop_correlation and models as corruption_drop_correlation; per-sample columns as model_agreement
    (both_right, ..., kappa, correctness_correlation, angle_true_correlation), pairing the same model,
    severity and sample under the two corruptions. Near-duplicate corruptions (e.g. two blurs) show
    correlations and kappa near 1.
    """
    where, params = equal_to(severity=severity)
    samples = (_pair_statistics(catalog, "corruption", f"corruption <> 'clean' AND {where}", params)
               .rename({"item_a": "corruption_a", "item_b": "corruption_b"}))
    return (corruption_drop_correlation(catalog, severity)
            .join(samples, on=["corruption_a", "corruption_b"], how="inner")
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


