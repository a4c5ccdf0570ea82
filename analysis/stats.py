"""Uncertainty of the numbers prunescope shows: intervals, paired tests, corrections, rank correlation.

Pure numpy/scipy functions, vectorised over cells (every argument may be an array; results broadcast), so
one call covers a whole evaluation matrix. scipy is used where it has the test (binomial tail for exact
McNemar, Benjamini-Hochberg, Student t, Spearman, Welch); the rest is written here and tested against brute force
(tests/analysis/test_stats.py). All intervals are two-sided at level `confidence` (default 0.95).

    wilson_interval          accuracy k/n of one model in one setting (Wilson 1927 score interval)
    mcnemar_exact            paired test of two models on the same samples (exact McNemar: binomial test
                             of the discordant pairs b, c at 1/2)
    paired_difference_interval  accuracy difference of two models on the same samples (Newcombe 1998,
                             method 10: hybrid score interval with the phi correlation)
    difference_interval      difference of two proportions from independent samples (Newcombe 1998,
                             method 10)
    t_test_over_seeds        paired differences over replicate seeds: one-sample t test with the seed as the
                             unit, none below MIN_SEEDS seeds
    kappa_interval           Cohen's kappa of two models' correctness with a bootstrap over the samples
    holm, benjamini_hochberg adjusted p-values over the cells shown
    mean_interval            mean over seeds with a Student t interval
    mean_difference          difference of two independent means with Welch's t interval and test
    rank_correlation         Spearman's rho, or the partial one controlling for a third variable, across
                             models with a percentile bootstrap over models or their groups
"""

from __future__ import annotations

import warnings
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


def difference_interval(correct_a: np.ndarray | int, total_a: np.ndarray | int, correct_b: np.ndarray | int,
                        total_b: np.ndarray | int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference, low, high) of the proportions a - b from two samples taken as independent: Newcombe's
    (1998) hybrid score interval (his method 10), the Wilson intervals of both combined. On the same
    samples (e.g. clean and corrupted versions of one test set) it is conservative: their positive
    correlation would narrow it (paired_difference_interval, when the 2x2 table is known)."""
    ka, na, kb, nb = (np.asarray(x, dtype=np.float64) for x in (correct_a, total_a, correct_b, total_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        pa, pb = ka / na, kb / nb
    la, ua = wilson_interval(ka, na, confidence)
    lb, ub = wilson_interval(kb, nb, confidence)
    difference = pa - pb
    return (difference, difference - np.sqrt((pa - la) ** 2 + (ub - pb) ** 2),
            difference + np.sqrt((ua - pa) ** 2 + (pb - lb) ** 2))


def kappa_interval(both_right: np.ndarray, only_a: np.ndarray, only_b: np.ndarray, both_wrong: np.ndarray, *,
                   resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kappa, low, high) per pair of models: Cohen's kappa of their correctness on the same samples, from
    the 2x2 table of counts, with a percentile bootstrap over the samples (a multinomial redraw of the
    table: the per-sample rows are not needed).

    kappa = (agreement - chance) / (1 - chance), where chance = a_r b_r + (1 - a_r)(1 - b_r) is the
    agreement expected from the two accuracies alone; an interval that holds 0 is not different from that
    chance agreement. NaN where kappa is undefined (a model always right or always wrong)."""
    table = np.stack([np.asarray(x, dtype=np.int64) for x in (both_right, only_a, only_b, both_wrong)], axis=-1)
    table = np.atleast_2d(table)
    n = table.sum(axis=-1)

    def kappa(counts: np.ndarray, total: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            p = counts / total[..., None]
            right_a, right_b = p[..., 0] + p[..., 1], p[..., 0] + p[..., 2]
            chance = right_a * right_b + (1 - right_a) * (1 - right_b)
            return np.where(1 - chance > 1e-12, (p[..., 0] + p[..., 3] - chance) / (1 - chance), np.nan)

    observed = kappa(table, n)
    if not observed.size:
        return observed, observed, observed
    rng = np.random.default_rng(seed)
    shares = table / np.maximum(n, 1)[:, None]
    draws = rng.multinomial(n[None, :], shares[None, :, :], size=(resamples, table.shape[0]))
    boot = kappa(draws, np.broadcast_to(n, (resamples, table.shape[0])))
    tail = (1 - confidence) / 2
    with warnings.catch_warnings():  # a pair whose every redraw is undefined: NaN, as expected
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(boot, [tail, 1 - tail], axis=0)
    undefined = np.isnan(observed)
    return observed, np.where(undefined, np.nan, low), np.where(undefined, np.nan, high)


# The fewest seeds a group-level test is run on. The test's unit is the seed (t_test_over_seeds); with 2
# seeds it has one degree of freedom (critical t 12.7) and its p-value rests wholly on two numbers being
# normal, which nothing can check: no group-level mark is printed below this many seeds.
MIN_SEEDS = 3


def t_test_over_seeds(mean: np.ndarray, std: np.ndarray, count: np.ndarray,
                      min_seeds: int = MIN_SEEDS) -> np.ndarray:
    """Two-sided p-value of "no difference" from per-seed paired differences (e.g. each seed's accuracy
    drop vs its own reference on the same samples): the one-sample Student t test over the seeds, as
    scipy.stats.ttest_1samp gives it, from the differences' mean, sample standard deviation and count.
    The seed is the unit, so samples within a seed never count as independent evidence about the method.
    NaN where count < min_seeds (too few seeds to test); where every seed has the same difference, 1 for
    a zero difference and 0 otherwise."""
    mean, std, count = (np.asarray(x, dtype=np.float64) for x in (mean, std, count))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(mean) / (np.nan_to_num(std) / np.sqrt(np.maximum(count, 1)))
        p_value = 2 * stats.t.sf(t, np.maximum(count - 1, 1))
    degenerate = np.nan_to_num(std) == 0
    p_value = np.where(degenerate, np.where(mean == 0, 1.0, 0.0), p_value)
    return np.where(count >= min_seeds, p_value, np.nan)


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
    """Spearman's rho (partial when a control was given) with its percentile bootstrap interval, its
    p-value, the pairs it rests on and the units the bootstrap resampled (models, or their groups)."""

    rho: float
    low: float
    high: float
    p_value: float
    models: int
    units: int


def _rank_correlations(x: np.ndarray, y: np.ndarray, control: np.ndarray | None) -> np.ndarray:
    """Per row of the (rows, n) arrays, NaN marking absent entries: Pearson's correlation of the average
    ranks of x and y (Spearman's rho), or, with `control`, of their residuals after a least-squares fit
    on the ranks of control (the partial Spearman correlation). NaN where a rank order is constant."""
    def centred_ranks(values: np.ndarray) -> np.ndarray:
        ranks = stats.rankdata(values, axis=1, nan_policy="omit")
        return np.nan_to_num(ranks - np.nanmean(ranks, axis=1, keepdims=True))

    rx, ry = centred_ranks(x), centred_ranks(y)
    scale = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        if control is not None:
            rz = centred_ranks(control)
            zz = (rz * rz).sum(axis=1, keepdims=True)
            rx = rx - (rx * rz).sum(axis=1, keepdims=True) / zz * rz
            ry = ry - (ry * rz).sum(axis=1, keepdims=True) / zz * rz
        denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
        # Residuals of an exact fit are rounding noise, not a rank order.
        return np.where(denominator > 1e-9 * scale, (rx * ry).sum(axis=1) / denominator, np.nan)


def rank_correlation(x: np.ndarray, y: np.ndarray, control: np.ndarray | None = None,
                     clusters: np.ndarray | None = None, *, resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> RankCorrelation:
    """Spearman's rho of x and y across models, or with `control` the partial Spearman correlation
    controlling for it (correlation of the rank residuals of x and y on the ranks of control), with a
    percentile bootstrap interval.

    The bootstrap resamples the models with replacement or, with `clusters` (one label per model, e.g.
    the replicate group), whole clusters with all their models, so seeds of one group never count as
    independent evidence. p-value: scipy's spearmanr without a control; with one, the t test of a
    partial correlation with n - 3 degrees of freedom. Pairs with a NaN are dropped; rho is NaN for
    fewer than 3 pairs (4 with a control) or a constant rank order.
    """
    columns = [np.asarray(v, dtype=np.float64) for v in (x, y) + (() if control is None else (control,))]
    keep = ~np.any([np.isnan(c) for c in columns], axis=0)
    columns = [c[keep] for c in columns]
    labels = np.arange(keep.sum()) if clusters is None else np.asarray(clusters)[keep]
    n = int(keep.sum())
    _, cluster_of = np.unique(labels, return_inverse=True)
    units = int(cluster_of.max()) + 1 if n else 0
    nan = float("nan")
    extra = 0 if control is None else 1
    if n < 3 + extra:
        return RankCorrelation(nan, nan, nan, nan, n, units)
    z = columns[2][None] if control is not None else None
    rho = float(_rank_correlations(columns[0][None], columns[1][None], z)[0])
    if np.isnan(rho):
        return RankCorrelation(nan, nan, nan, nan, n, units)
    if control is None:
        p_value = float(stats.spearmanr(columns[0], columns[1]).pvalue)
    else:
        degrees = n - 3
        t = rho * np.sqrt(degrees / max(1 - rho * rho, 1e-300))
        p_value = float(2 * stats.t.sf(abs(t), degrees))
    # Members of each cluster, padded with -1; a resample draws `units` clusters with replacement.
    size = np.bincount(cluster_of).max()
    members = np.full((units, size), -1)
    for unit in range(units):
        found = np.flatnonzero(cluster_of == unit)
        members[unit, :found.size] = found
    rng = np.random.default_rng(seed)
    index = members[rng.integers(0, units, size=(resamples, units))].reshape(resamples, -1)
    present = index >= 0

    def drawn(values: np.ndarray) -> np.ndarray:
        return np.where(present, values[np.maximum(index, 0)], np.nan)

    rhos = _rank_correlations(drawn(columns[0]), drawn(columns[1]), None if z is None else drawn(columns[2]))
    rhos = rhos[~np.isnan(rhos)]  # a resample of identical models has no rank order
    tail = (1 - confidence) / 2
    low, high = np.quantile(rhos, [tail, 1 - tail]) if rhos.size else (nan, nan)
    return RankCorrelation(rho, float(low), float(high), p_value, n, units)


def mean_difference(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(difference, low, high, p_value) of mean(a) - mean(b) for two independent samples (e.g. the models
    of two methods): Welch's t interval and two-sided test, as scipy.stats.ttest_ind(equal_var=False).
    NaN unless both samples have 2 values or more (no spread to estimate)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    nan = float("nan")
    if a.size < 2 or b.size < 2:
        return nan, nan, nan, nan
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return float(a.mean() - b.mean()), float(interval.low), float(interval.high), float(result.pvalue)
