"""Uncertainty of the numbers prunescope shows: intervals, paired tests, corrections, rank correlation.

Pure numpy/scipy functions, vectorised over cells (every argument may be an array; results broadcast), so
one call covers a whole evaluation matrix. scipy is used where it has the test (binomial tail for exact
McNemar, Benjamini-Hochberg, Student t, Spearman); the rest is written here and tested against brute force
(tests/test_stats.py). All intervals are two-sided at level `confidence` (default 0.95).

    wilson_interval          accuracy k/n of one model in one setting (Wilson 1927 score interval)
    mcnemar_exact            paired test of two models on the same samples (exact McNemar: binomial test
                             of the discordant pairs b, c at 1/2)
    paired_difference_interval  accuracy difference of two models on the same samples (Newcombe 1998,
                             method 10: hybrid score interval with the phi correlation)
    hierarchical_bootstrap   accuracy difference over replicate seeds: resample seeds, then samples within
                             each chosen seed (Saravanan et al. 2020), from per-seed discordant counts
    holm, benjamini_hochberg adjusted p-values over the cells shown
    mean_interval            mean over seeds with a Student t interval
    spearman_interval        Spearman's rho across models with a percentile bootstrap over models
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(correct: np.ndarray | int, total: np.ndarray | int,
                    confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) Wilson score interval of the proportion correct/total; (0, 1) where total is 0.

    Same as scipy.stats.binomtest(k, n).proportion_ci(method="wilson"), for arrays of cells at once.
    """
    k = np.asarray(correct, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    z = _z(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return low, high


def mcnemar_exact(only_a: np.ndarray | int, only_b: np.ndarray | int) -> np.ndarray:
    """Two-sided exact McNemar p-value from the discordant counts: samples only model A gets right
    (`only_a`) and only model B gets right (`only_b`). Equals scipy.stats.binomtest(only_a, only_a +
    only_b, 0.5).pvalue; 1 when there are no discordant pairs."""
    b = np.asarray(only_a, dtype=np.int64)
    c = np.asarray(only_b, dtype=np.int64)
    n = b + c
    tail = stats.binom.cdf(np.minimum(b, c), np.maximum(n, 1), 0.5)
    return np.where(n > 0, np.minimum(1.0, 2 * tail), 1.0)


def paired_difference_interval(both: np.ndarray | int, only_a: np.ndarray | int, only_b: np.ndarray | int,
                               neither: np.ndarray | int,
                               confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference, low, high) of accuracy(A) - accuracy(B) on the same samples, Newcombe's (1998) hybrid
    score interval for paired proportions (his method 10): the Wilson intervals of both accuracies
    combined with the phi coefficient of the 2x2 table. Counts: `both` right, `only_a` right, `only_b`
    right, `neither` right."""
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (both, only_a, only_b, neither))
    n = a + b + c + d
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = (a + b) / n, (a + c) / n
        l1, u1 = wilson_interval(a + b, n, confidence)
        l2, u2 = wilson_interval(a + c, n, confidence)
        margins = (a + b) * (c + d) * (a + c) * (b + d)
        phi = np.where(margins > 0, (a * d - b * c) / np.sqrt(np.where(margins > 0, margins, 1.0)), 0.0)
        delta = np.sqrt(np.maximum((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
        epsilon = np.sqrt(np.maximum((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    difference = p1 - p2
    return difference, np.maximum(difference - delta, -1.0), np.minimum(difference + epsilon, 1.0)


@dataclass(frozen=True)
class BootstrapResult:
    """Per cell: the observed mean difference over seeds, its percentile interval, the bootstrap standard
    error and a two-sided p-value of "no difference" from the normal test difference / standard error
    (continuous, so a multiple-comparison correction over many cells is not limited by the resample
    count as a share-of-resamples p-value would be)."""

    difference: np.ndarray
    low: np.ndarray
    high: np.ndarray
    standard_error: np.ndarray
    p_value: np.ndarray


def hierarchical_bootstrap(only_a: np.ndarray, only_b: np.ndarray, total: np.ndarray, *, resamples: int = 2000,
                           confidence: float = 0.95, seed: int = 0) -> BootstrapResult:
    """Accuracy difference A - B over replicate seeds, two-level bootstrap: draw the seeds with
    replacement, then within each drawn seed draw its `total` samples with replacement.

    Arrays are (cells, seeds): per cell and seed the discordant counts (only A right, only B right) and the
    number of samples. A paired sample contributes +1, -1 or 0 to the difference, so redrawing a seed's
    samples is a multinomial draw over those three outcomes with the observed frequencies: the per-sample
    rows are not needed. Seeds with total 0 must not be passed. Deterministic for a given `seed`.
    """
    b = np.atleast_2d(np.asarray(only_a, dtype=np.int64))
    c = np.atleast_2d(np.asarray(only_b, dtype=np.int64))
    n = np.atleast_2d(np.asarray(total, dtype=np.int64))
    cells, seeds = b.shape
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, seeds, size=(cells, resamples, seeds))
    rows = np.arange(cells)[:, None, None]
    nb, nc, nn = b[rows, chosen], c[rows, chosen], n[rows, chosen]
    plus = rng.binomial(nn, nb / nn)
    rest = nn - plus
    with np.errstate(invalid="ignore", divide="ignore"):
        minus_share = np.where(nn - nb > 0, nc / np.maximum(nn - nb, 1), 0.0)
    minus = rng.binomial(rest, np.clip(minus_share, 0.0, 1.0))
    draws = ((plus - minus) / nn).mean(axis=2)  # (cells, resamples)
    observed = ((b - c) / n).mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], axis=1)
    error = draws.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_value = np.where(error > 0, 2 * stats.norm.sf(np.abs(observed) / np.where(error > 0, error, 1.0)),
                           np.where(observed == 0, 1.0, 0.0))
    return BootstrapResult(observed, low, high, error, p_value)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values (family-wise error); NaN entries stay NaN and do not
    count towards the family."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    steps = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values (false discovery rate), scipy's
    false_discovery_control; NaN entries stay NaN and do not count towards the family."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = ~np.isnan(p)
    if valid.any():
        adjusted[valid] = stats.false_discovery_control(p[valid], method="bh")
    return adjusted


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}


def t_half_width(std: np.ndarray, count: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """Half-width of the Student t interval of a mean of `count` values with sample standard deviation
    `std`; 0 where count < 2 (no spread to estimate)."""
    count = np.asarray(count, dtype=np.float64)
    quantile = stats.t.ppf(0.5 + confidence / 2, np.maximum(count - 1, 1))
    return np.where(count > 1, quantile * np.nan_to_num(np.asarray(std, dtype=np.float64))
                    / np.sqrt(np.maximum(count, 1)), 0.0)


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of replicate values (e.g. one accuracy per seed) with a Student t
    interval; low = high = mean for a single value (no spread to estimate)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    half = float(t_half_width(x.std(ddof=1), x.size, confidence))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class RankCorrelation:
    rho: float
    low: float
    high: float
    p_value: float
    models: int


def spearman_interval(x: np.ndarray, y: np.ndarray, *, resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> RankCorrelation:
    """Spearman's rho of x and y (scipy) with a percentile bootstrap interval over the pairs (models):
    resample the models with replacement and recompute rho. Pairs with a NaN are dropped; rho is NaN for
    fewer than 3 pairs or a constant input."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankCorrelation(float("nan"), float("nan"), float("nan"), float("nan"), int(x.size))
    result = stats.spearmanr(x, y)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, x.size, size=(resamples, x.size))
    rx = stats.rankdata(x[index], axis=1)
    ry = stats.rankdata(y[index], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rhos = (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    rhos = rhos[~np.isnan(rhos)]  # a resample of identical models has no rank order
    tail = (1 - confidence) / 2
    low, high = np.quantile(rhos, [tail, 1 - tail]) if rhos.size else (np.nan, np.nan)
    return RankCorrelation(float(result.statistic), float(low), float(high), float(result.pvalue), int(x.size))
