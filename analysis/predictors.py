"""What predicts robustness: per-model geometric statistics against per-model robustness, across models.

The paper's "why" as a test on any study: for every model, a statistic of its per-sample geometry in one
setting (clean images by default) is set against how robust the model is (mean corruption accuracy or
relative mCE, analysis.matrices.model_summary); Spearman's rho across models, with a bootstrap interval
over models (analysis.stats.spearman_interval), says whether the statistic orders the models by
robustness. `paper_finding` checks the paper's own claim: biprop's angles to the true class are larger on
average and less spread, and biprop is more robust.
"""

from __future__ import annotations

import polars as pl

from analysis import stats
from analysis.matrices import model_summary
from store.catalog import Catalog

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
    "relative_mce": ("relative mCE (1 = dense; lower is more robust)", False),
}


def model_geometry(catalog: Catalog, corruption: str = "clean", severity: int = 0) -> pl.DataFrame:
    """Per model, over its finite rows in one setting: STATISTICS, with method, target_sparsity and the
    robustness TARGETS (from model_summary). `samples` counts the rows used."""
    geometry = catalog.query("""
        WITH chosen AS (
            SELECT model_id, label, angle_true, feature_norm, margin FROM predictions
            WHERE corruption = ? AND severity = ? AND finite
        ),
        per_class AS (SELECT model_id, label, stddev_samp(angle_true) AS class_std FROM chosen GROUP BY ALL),
        spread AS (SELECT model_id, avg(class_std) AS within_class_angle_std FROM per_class GROUP BY model_id)
        SELECT c.model_id, count(*) AS samples, avg(angle_true) AS angle_mean, stddev_samp(angle_true) AS angle_std,
               any_value(s.within_class_angle_std) AS within_class_angle_std,
               avg(feature_norm) AS feature_norm_mean, avg(margin) AS margin_mean
        FROM chosen c JOIN spread s USING (model_id)
        GROUP BY c.model_id
    """, [corruption, int(severity)])
    summary = model_summary(catalog).select("model_id", "method", "target_sparsity", *TARGETS)
    return summary.join(geometry, on="model_id", how="inner")


def correlations(points: pl.DataFrame, target: str, resamples: int = 2000, seed: int = 0) -> pl.DataFrame:
    """Spearman's rho of every statistic with `target` across the models in `points` (model_geometry),
    with its 95 % bootstrap interval over models and scipy's p-value: statistic, description, rho, low,
    high, p_value, models."""
    rows = []
    for name, description in STATISTICS.items():
        result = stats.spearman_interval(points[name].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                                         points[target].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                                         resamples=resamples, seed=seed)
        rows.append({"statistic": name, "description": description, "rho": result.rho, "low": result.low,
                     "high": result.high, "p_value": result.p_value, "models": result.models})
    return pl.DataFrame(rows).with_columns(pl.col("rho", "low", "high", "p_value").fill_nan(None))


def paper_finding(points: pl.DataFrame, target: str = "corruption_accuracy") -> pl.DataFrame:
    """The paper's claim, checked on this study: biprop models against the other pruned models, on the
    mean angle (claim: larger), the angle's spread (claim: smaller) and robustness (claim: more robust).
    Columns: quantity, claim, biprop, other_pruned (means over models), holds (null without biprop or
    other pruned models)."""
    label, higher_is_robust = TARGETS[target]
    pruned = points.filter(pl.col("method") != "dense")
    biprop, other = pruned.filter(pl.col("method") == "biprop"), pruned.filter(pl.col("method") != "biprop")
    checks = [("angle_mean", "larger for biprop", True), ("angle_std", "smaller for biprop", False),
              (target, f"biprop more robust ({label})", higher_is_robust)]
    rows = []
    for column, claim, larger in checks:
        b = biprop[column].mean() if biprop.height else None
        o = other[column].mean() if other.height else None
        holds = None if b is None or o is None else (b > o if larger else b < o)
        rows.append({"quantity": column, "claim": claim, "biprop": b, "other_pruned": o, "holds": holds})
    return pl.DataFrame(rows, schema={"quantity": pl.String, "claim": pl.String, "biprop": pl.Float64,
                                      "other_pruned": pl.Float64, "holds": pl.Boolean})
