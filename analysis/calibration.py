"""Calibration under corruption (Ovadia et al. 2019): does a model's confidence match its accuracy, and how
does that degrade as corruption grows?

Per (model, corruption, severity) the samples are put in BINS bins by their confidence (softmax
probability of the predicted class): equal-width bins on [0, 1] (Guo et al. 2017's ECE) or, adaptive,
equal-mass bins of about the same number of samples each (Nguyen & O'Connor 2015; Nixon et al. 2019).
    ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b|
Its 95 % interval is a bootstrap over the samples done on the bins' sufficient statistics: a redraw of N
samples puts m_b ~ Multinomial(N, n_b / N) in each bin, of which Binomial(m_b, accuracy_b) are right; the
mean confidence of the m_b draws is taken as normal with the bin's mean and variance / m_b. Bins stay
fixed across redraws (for adaptive bins a full bootstrap would recompute the edges), so no per-sample
row leaves DuckDB.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis.sql import equal_to
from store.catalog import Catalog
from store.vocabulary import MODEL_ORDER, SETTING_ORDER

BINS = 15
RESAMPLES = 500
_BLOCK = 256  # cells per bootstrap block (bounds the (resamples, cells, bins) temporaries)


def ece_interval(samples: np.ndarray, correct: np.ndarray, confidence_sum: np.ndarray,
                 confidence_squares: np.ndarray, *, resamples: int = RESAMPLES, confidence: float = 0.95,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ece, low, high) per cell from per-bin statistics, arrays (cells, bins): samples n_b, right answers
    k_b, sum and sum of squares of the confidences. Bootstrap as the module says; NaN for an empty cell."""
    n, k, s, q = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in
                  (samples, correct, confidence_sum, confidence_squares))
    total = n.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ece = np.abs(k - s).sum(axis=1) / total
        share = np.where(total[:, None] > 0, n / np.maximum(total, 1)[:, None], 0.0)
        accuracy = np.where(n > 0, k / np.maximum(n, 1), 0.0)
        mean = np.where(n > 0, s / np.maximum(n, 1), 0.0)
        spread = np.sqrt(np.maximum(np.where(n > 0, q / np.maximum(n, 1), 0.0) - mean * mean, 0.0))
    rng = np.random.default_rng(seed)
    low, high = np.full(ece.shape, np.nan), np.full(ece.shape, np.nan)
    tail = (1 - confidence) / 2
    for start in range(0, ece.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        cells = total[block].astype(np.int64)
        drawn = rng.multinomial(cells[None, :], share[block][None], size=(resamples, cells.size))
        right = rng.binomial(drawn, accuracy[block][None])
        noise = rng.standard_normal(drawn.shape) * np.sqrt(drawn) * spread[block][None]
        boot = np.abs(right - (drawn * mean[block][None] + noise)).sum(axis=2) / np.maximum(cells, 1)
        low[block], high[block] = np.quantile(boot, [tail, 1 - tail], axis=0)
    empty = total == 0
    return (np.where(empty, np.nan, ece), np.where(empty, np.nan, low), np.where(empty, np.nan, high))


def _bins_sql(adaptive: bool, bins: int) -> str:
    """SQL for a row's bin, 0 to bins - 1 (`bins` an integer, formatted, never user text)."""
    if adaptive:
        return f"ntile({bins}) OVER (PARTITION BY model_id, corruption, severity ORDER BY confidence) - 1"
    return f"least(floor(confidence * {bins})::INTEGER, {bins - 1})"


def calibration_bins(catalog: Catalog, adaptive: bool = False, bins: int = BINS, model_id: str | None = None,
                     corruption: str | None = None, severity: int | None = None) -> pl.DataFrame:
    """Per (model, corruption, severity, bin): samples, correct (right answers), confidence_sum,
    confidence_squares and, for the reliability diagram, accuracy and confidence (the bin's means).
    Rows with a non-finite confidence are left out. model_id / corruption / severity restrict the rows."""
    where, params = equal_to(model_id=model_id, corruption=corruption, severity=severity)
    return catalog.query(f"""
        WITH chosen AS (
            SELECT model_id, corruption, severity, confidence::DOUBLE AS confidence, correct::INTEGER AS correct
            FROM predictions WHERE isfinite(confidence) AND {where}
        ),
        binned AS (SELECT *, ({_bins_sql(adaptive, int(bins))})::INTEGER AS bin FROM chosen)
        SELECT model_id, corruption, severity, bin, count(*) AS samples, sum(correct)::BIGINT AS correct,
               sum(confidence) AS confidence_sum, sum(confidence * confidence) AS confidence_squares,
               avg(correct) AS accuracy, avg(confidence) AS confidence
        FROM binned GROUP BY model_id, corruption, severity, bin
        ORDER BY model_id, {SETTING_ORDER}, bin
    """, params, name="calibration_bins")  # noqa: S608 (constant SQL and an integer)


def calibration_cells(catalog: Catalog, adaptive: bool = False, bins: int = BINS, seed: int = 0) -> pl.DataFrame:
    """Per (model, corruption, severity): samples, accuracy, confidence (mean), ece with its 95 % bootstrap
    interval (ece_low/high) and overconfidence = confidence - accuracy; with arch, method and
    target_sparsity, in the matrix's order. `adaptive` picks equal-mass bins."""
    per_bin = calibration_bins(catalog, adaptive, bins)
    keys = ["model_id", "corruption", "severity"]
    cells = per_bin.select(keys).unique(maintain_order=True)
    if cells.is_empty():
        schema = {"model_id": pl.String, "arch": pl.String, "method": pl.String, "target_sparsity": pl.Float64,
                  "corruption": pl.String, "severity": pl.Int64, "samples": pl.Int64, "accuracy": pl.Float64,
                  "confidence": pl.Float64, "overconfidence": pl.Float64, "ece": pl.Float64,
                  "ece_low": pl.Float64, "ece_high": pl.Float64}
        return pl.DataFrame(schema=schema)
    index = cells.with_row_index("cell").join(per_bin, on=keys)
    shape = (cells.height, bins)
    arrays = []
    for column in ("samples", "correct", "confidence_sum", "confidence_squares"):
        array = np.zeros(shape)
        array[index["cell"].to_numpy(), index["bin"].to_numpy()] = index[column].to_numpy()
        arrays.append(array)
    ece, low, high = ece_interval(*arrays, seed=seed)
    samples = arrays[0].sum(axis=1)
    accuracy, mean_confidence = arrays[1].sum(axis=1) / samples, arrays[2].sum(axis=1) / samples
    result = cells.with_columns(
        pl.Series("samples", samples.astype(np.int64)), pl.Series("accuracy", accuracy),
        pl.Series("confidence", mean_confidence), pl.Series("overconfidence", mean_confidence - accuracy),
        pl.Series("ece", ece), pl.Series("ece_low", low), pl.Series("ece_high", high))
    models = catalog.query(f"SELECT model_id, arch, method, target_sparsity FROM models ORDER BY {MODEL_ORDER}", name="calibration_cells")  # noqa: S608 (constant SQL)
    return models.join(result, on="model_id", how="inner", maintain_order="left").select(
        "model_id", "arch", "method", "target_sparsity", "corruption", "severity", "samples", "accuracy",
        "confidence", "overconfidence", "ece", "ece_low", "ece_high")
