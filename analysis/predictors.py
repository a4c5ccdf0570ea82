"""What predicts robustness: per-model geometric statistics against per-model robustness, across models.

The paper's "why" as a test on any study: for every model, a statistic of its per-sample geometry in one
setting (clean images by default) is set against how robust the model is (mean corruption accuracy or
relative mCE, analysis.matrices.model_summary). Geometry and robustness both track how good a model is, so
a raw rank correlation cannot tell geometry from "a better model": `correlations` gives Spearman's rho and,
beside it, the partial Spearman correlation controlling for clean accuracy, each with a bootstrap interval
over models (over replicate groups when the study has seeds) and a p-value adjusted over the statistics
shown, and words its verdict after them (VERDICTS). `paper_finding` tests the paper's own claim: supermask
models' angles to the true class are larger on average and less spread, and they are more robust.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis import stats
from analysis.matrices import model_summary
from store.catalog import Catalog
from store.vocabulary import is_pruned

# statistic -> what it is (the page's picker).
STATISTICS: dict[str, str] = {
    "angle_mean": "mean angle to the true class (°)",
    "angle_std": "standard deviation of the angle to the true class (°)",
    "within_class_angle_std": "within-class spread of the angle (mean over classes of its std, °)",
    "feature_norm_mean": "mean feature norm",
    "margin_mean": "mean margin",
}
# target -> (what it is, whether higher means more robust).
TARGETS: dict[str, tuple[str, bool]] = {
    "corruption_accuracy": ("mean corruption accuracy", True),
    "relative_mce": ("relative mCE (1 = as robust as the reference; lower is more robust)", False),
}
CONTROL = "clean_accuracy"  # what the partial correlation holds fixed
ALPHA = 0.05
# The verdict on one statistic. "Evidence" for a correlation: its adjusted p-value is below ALPHA and its
# interval excludes 0. Beside the numbers, `raw_words` / `partial_words` say how each correlation's interval
# and adjusted p-value stand (evidence_words), so a verdict is never printed against an interval that
# seems to say otherwise.
VERDICTS: dict[str, str] = {
    "associated beyond clean accuracy": "the partial correlation (clean accuracy held fixed) has evidence",
    "associated, not beyond clean accuracy": "the raw correlation has evidence, the partial one not after "
                                             "adjusting for the statistics shown: clean accuracy may explain it",
    "associated, not controlled": "the raw correlation has evidence; the partial one cannot be computed "
                                  "(clean accuracy constant or fewer than 4 models)",
    "no evidence": "neither correlation has evidence after adjusting for the statistics shown",
    "undefined": "a constant statistic or robustness across these models",
}
# Methods that learn a supermask over frozen random weights (compute.pruning.biprop, edgepopup): the
# paper's finding is about them.
SUPERMASK_METHODS: tuple[str, ...] = ("biprop", "edgepopup")


def model_geometry(catalog: Catalog, corruption: str = "clean", severity: int = 0) -> pl.DataFrame:
    """Per model, over its finite rows in one setting: STATISTICS, with group_id, method, target_sparsity,
    clean_accuracy and the robustness TARGETS (from model_summary). `samples` counts the rows used."""
    geometry = catalog.query("""
        WITH chosen AS (
            SELECT model_id, label, angle_true, feature_norm, margin FROM predictions
            WHERE corruption = ? AND severity = ? AND finite
        ),
        per_class AS (SELECT model_id, label, stddev_samp(angle_true) AS class_std FROM chosen GROUP BY ALL),
        spread AS (SELECT model_id, avg(class_std) AS within_class_angle_std FROM per_class GROUP BY model_id)
        SELECT c.model_id, any_value(m.group_id) AS group_id, count(*) AS samples, avg(angle_true) AS angle_mean,
               stddev_samp(angle_true) AS angle_std, any_value(s.within_class_angle_std) AS within_class_angle_std,
               avg(feature_norm) AS feature_norm_mean, avg(margin) AS margin_mean
        FROM chosen c JOIN spread s USING (model_id) JOIN models m USING (model_id)
        GROUP BY c.model_id
    """, [corruption, int(severity)], name="model_geometry")
    summary = model_summary(catalog).select("model_id", "method", "target_sparsity", CONTROL, *TARGETS)
    return summary.join(geometry, on="model_id", how="inner")


def _numbers(points: pl.DataFrame, column: str) -> np.ndarray:
    return points[column].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _evidence(p_adjusted: float, low: float, high: float) -> bool:
    return bool(p_adjusted < ALPHA and (low > 0 or high < 0))


def evidence_words(p_adjusted: float | None, low: float | None, high: float | None, tests: int) -> str:
    """How one estimate's 95 % interval and adjusted p-value stand, in words that agree with both: the
    interval is unadjusted, the p-value adjusted over `tests` estimates, so an interval that excludes 0
    without an adjusted p below ALPHA is said to be so rather than called "no evidence"."""
    if p_adjusted is None or low is None or high is None:
        return "cannot be computed"
    excludes = low > 0 or high < 0
    below = p_adjusted < ALPHA
    if excludes and below:
        return f"evidence: its interval excludes 0 and its adjusted p is below {ALPHA}"
    if excludes:
        return f"its interval excludes 0, but not after adjusting for {tests} statistics (adjusted p = {p_adjusted:.2g})"
    if below:
        return f"its adjusted p is below {ALPHA}, but its interval holds 0: no evidence"
    return "no evidence: its interval holds 0"


def verdict(row: dict) -> str:
    """One statistic's VERDICTS key from its row of `correlations`."""
    if row["rho"] is None:
        return "undefined"
    raw = _evidence(row["p_adjusted"], row["low"], row["high"])
    if row["partial_rho"] is None:
        return "associated, not controlled" if raw else "no evidence"
    if _evidence(row["partial_p_adjusted"], row["partial_low"], row["partial_high"]):
        return "associated beyond clean accuracy"
    return "associated, not beyond clean accuracy" if raw else "no evidence"


def method_correlations(catalog: Catalog, corruption: str, severity: int, methods: tuple[str, ...], target: str,
                        correction: str = "holm") -> pl.DataFrame:
    """correlations over the models of `methods` in model_geometry of this setting, taken in model order (the
    bootstrap's resamples depend on it): one named query, so the dashboard computes the bootstrap once per
    selection, not on every page view (issue 27's profile)."""
    points = model_geometry(catalog, corruption, severity).filter(pl.col("method").is_in(list(methods)))
    return correlations(points.sort("model_id"), target, correction)  # in model order: the same resamples


def correlations(points: pl.DataFrame, target: str, correction: str = "holm", resamples: int = 2000,
                 seed: int = 0) -> pl.DataFrame:
    """Every statistic against `target` across the models in `points` (model_geometry).

    rho, low, high, p_value: Spearman's rho with its 95 % bootstrap interval and scipy's p-value;
    partial_rho, partial_low, partial_high, partial_p_value: the same for the partial Spearman
    correlation controlling for clean accuracy (stats.rank_correlation). The bootstrap resamples models,
    or whole replicate groups when a group holds several models (`units` counts what it resampled).
    p_adjusted / partial_p_adjusted: `correction` ("holm" or "bh", stats.CORRECTIONS) over the statistics
    shown, each kind of correlation a family of its own. verdict: a key of VERDICTS; raw_words and
    partial_words: evidence_words of each correlation.
    """
    correct = stats.CORRECTIONS[correction]
    y, control = _numbers(points, target), _numbers(points, CONTROL)
    groups = points["group_id"].to_numpy() if "group_id" in points.columns else None
    clusters = groups if groups is not None and len(set(groups)) < len(groups) else None
    rows = []
    for name, description in STATISTICS.items():
        x = _numbers(points, name)
        raw = stats.rank_correlation(x, y, clusters=clusters, resamples=resamples, seed=seed)
        partial = stats.rank_correlation(x, y, control, clusters=clusters, resamples=resamples, seed=seed)
        rows.append({"statistic": name, "description": description, "rho": raw.rho, "low": raw.low,
                     "high": raw.high, "p_value": raw.p_value, "partial_rho": partial.rho,
                     "partial_low": partial.low, "partial_high": partial.high,
                     "partial_p_value": partial.p_value, "models": raw.models, "units": raw.units})
    table = pl.DataFrame(rows).with_columns(
        pl.Series("p_adjusted", correct(np.array([r["p_value"] for r in rows]))),
        pl.Series("partial_p_adjusted", correct(np.array([r["partial_p_value"] for r in rows]))),
    ).with_columns(pl.col(pl.Float64).fill_nan(None))
    rows = list(table.iter_rows(named=True))
    words = {prefix: [evidence_words(r[prefix + "p_adjusted"], r[prefix + "low"], r[prefix + "high"], len(rows))
                      for r in rows] for prefix in ("", "partial_")}
    return table.with_columns(pl.Series("verdict", [verdict(r) for r in rows], dtype=pl.String),
                              pl.Series("raw_words", words[""], dtype=pl.String),
                              pl.Series("partial_words", words["partial_"], dtype=pl.String)).select(
        "statistic", "description", "verdict", "raw_words", "partial_words", "rho", "low", "high", "p_value",
        "p_adjusted", "partial_rho", "partial_low", "partial_high", "partial_p_value", "partial_p_adjusted",
        "models", "units")


def paper_finding(points: pl.DataFrame, target: str = "corruption_accuracy", correction: str = "holm") -> pl.DataFrame:
    """The paper's claim as three tests on this study: supermask models (SUPERMASK_METHODS) against the
    other pruned models (store.vocabulary.is_pruned: a quantized-only model is not pruned), on the mean
    angle (claim: larger), the angle's spread (claim: smaller) and robustness (claim: more robust).

    Per quantity: the means of both sets of models, effect = supermask mean - other mean with Welch's 95 %
    interval and two-sided p-value (stats.mean_difference; every model counts once, seeds included),
    p_adjusted over the three tests (`correction`), the number of models on each side and a verdict:
    "supported" (claimed direction, adjusted p < ALPHA), "contradicted" (opposite direction, adjusted p <
    ALPHA), "not shown" (no significant difference; "not shown: the interval excludes 0, but not after
    adjusting for 3 tests" where the unadjusted interval excludes 0) or "cannot test" (fewer than 2 models
    on a side).
    """
    label, higher_is_robust = TARGETS[target]
    pruned = points.filter(pl.col("method").map_elements(is_pruned, return_dtype=pl.Boolean))
    is_supermask = pl.col("method").is_in(list(SUPERMASK_METHODS))
    supermask, other = pruned.filter(is_supermask), pruned.filter(~is_supermask)
    checks = [("angle_mean", "larger for supermask models", True),
              ("angle_std", "smaller for supermask models", False),
              (target, f"supermask models more robust ({label})", higher_is_robust)]
    rows = []
    for column, claim, larger in checks:
        a, b = _numbers(supermask, column), _numbers(other, column)
        effect, low, high, p_value = stats.mean_difference(a, b)
        rows.append({"quantity": column, "claim": claim, "supermask": float(np.nanmean(a)) if a.size else None,
                     "other_pruned": float(np.nanmean(b)) if b.size else None, "effect": effect, "low": low,
                     "high": high, "p_value": p_value, "larger": larger,
                     "supermask_models": int(a.size), "other_models": int(b.size)})
    adjusted = stats.CORRECTIONS[correction](np.array([r["p_value"] for r in rows]))
    for row, p in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = p
        if np.isnan(p):
            row["verdict"] = "cannot test"
        elif p >= ALPHA:
            excludes = row["low"] > 0 or row["high"] < 0
            row["verdict"] = ("not shown: the interval excludes 0, but not after adjusting for "
                              f"{len(rows)} tests" if excludes else "not shown")
        else:
            row["verdict"] = "supported" if (row["effect"] > 0) == row.pop("larger") else "contradicted"
        row.pop("larger", None)
    schema = {"quantity": pl.String, "claim": pl.String, "verdict": pl.String, "supermask": pl.Float64,
              "other_pruned": pl.Float64, "effect": pl.Float64, "low": pl.Float64, "high": pl.Float64,
              "p_value": pl.Float64, "p_adjusted": pl.Float64, "supermask_models": pl.Int64,
              "other_models": pl.Int64}
    return pl.DataFrame(rows, schema=schema).with_columns(pl.col(pl.Float64).fill_nan(None))
