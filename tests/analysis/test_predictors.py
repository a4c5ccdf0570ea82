"""analysis.predictors against direct computation, and the pages that show groups, intervals, PIE counts and
robustness predictors under streamlit's AppTest, on a small store with three seeds per group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps
from streamlit.testing.v1 import AppTest

from analysis import predictors
from dashboard.pages import PAGES
from testkit.direct import direct_rows
from testkit.study import write_study

MODELS = [(f"{method}-s{seed}", method, sparsity, seed)
          for method, sparsity in (("dense", 0.0), ("lrr", 0.9), ("biprop", 0.8)) for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("predictors"), models=MODELS, num_samples=60)


def test_model_geometry_matches_polars_on_the_parquet_files(study, catalog) -> None:
    rows = direct_rows(study).filter((pl.col("corruption") == "fog") & (pl.col("severity") == 3) & pl.col("finite"))
    expected = rows.group_by("model_id").agg(
        pl.col("angle_true").mean().alias("angle_mean"), pl.col("angle_true").std().alias("angle_std"),
        pl.col("feature_norm").mean().alias("feature_norm_mean"), pl.col("margin").mean().alias("margin_mean"))
    spread = rows.group_by("model_id", "label").agg(pl.col("angle_true").std().alias("s")).group_by("model_id").agg(
        pl.col("s").mean().alias("within_class_angle_std"))
    expected = expected.join(spread, on="model_id").sort("model_id")
    found = predictors.model_geometry(catalog, "fog", 3).sort("model_id")
    assert found["model_id"].to_list() == expected["model_id"].to_list()
    for name in predictors.STATISTICS:
        assert found[name].to_list() == pytest.approx(expected[name].to_list(), rel=1e-5)
    assert found["corruption_accuracy"].null_count() == 0


def test_correlations_are_scipy_spearman_adjusted_over_the_statistics(catalog) -> None:
    points = predictors.model_geometry(catalog)
    table = predictors.correlations(points, "corruption_accuracy", resamples=300)
    assert table["statistic"].to_list() == list(predictors.STATISTICS)
    p_values = []
    for row in table.iter_rows(named=True):
        expected = sps.spearmanr(points[row["statistic"]], points["corruption_accuracy"])
        assert (row["rho"], row["p_value"]) == pytest.approx((expected.statistic, expected.pvalue))
        assert row["low"] <= row["rho"] <= row["high"] and row["verdict"] in predictors.VERDICTS
        assert row["models"] == len(MODELS) and row["units"] == 3  # three seeds per group: groups resampled
        p_values.append(expected.pvalue)
    # Holm by hand: the k-th smallest of m p-values times (m - k + 1), running maximum, capped at 1.
    order = np.argsort(p_values)
    holm = np.minimum(1, np.maximum.accumulate([(5 - k) * p_values[i] for k, i in enumerate(order)]))
    assert table["p_adjusted"].to_numpy()[order] == pytest.approx(holm)
    bh = predictors.correlations(points, "corruption_accuracy", "bh", resamples=50)
    assert bh["p_adjusted"].to_numpy() == pytest.approx(sps.false_discovery_control(p_values))


def simulated_study(truth: str, models: int = 40, seed: int = 3) -> pl.DataFrame:
    """Models whose clean accuracy drives their robustness. The angle: "absent", unrelated to either;
    "clean only", tracks clean accuracy alone; "present", also drives robustness by itself (through a
    part clean accuracy does not explain)."""
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0.6, 0.95, models)
    own = rng.normal(size=models)
    angle = rng.normal(size=models) if truth == "absent" else 40 + 30 * clean + 2 * own
    robust = clean - 0.2 + rng.normal(scale=0.01, size=models) + (0.03 * own if truth == "present" else 0)
    return pl.DataFrame({"model_id": [f"m{i}" for i in range(models)], "group_id": [f"m{i}" for i in range(models)],
                         "method": "lrr", "clean_accuracy": clean, "corruption_accuracy": robust,
                         "angle_mean": angle, **{name: rng.normal(size=models) for name in predictors.STATISTICS
                                                 if name != "angle_mean"}})


TRUTHS = [("clean only", "associated, not beyond clean accuracy"), ("present", "associated beyond clean accuracy"),
          ("absent", "no evidence")]


@pytest.mark.parametrize(("truth", "expected"), TRUTHS)
def test_the_verdict_finds_the_simulated_truth(truth, expected) -> None:
    table = predictors.correlations(simulated_study(truth), "corruption_accuracy", resamples=500)
    angle = table.filter(pl.col("statistic") == "angle_mean").row(0, named=True)
    assert angle["verdict"] == expected and (angle["rho"] > 0.5) == (truth != "absent")
    assert set(table.filter(pl.col("statistic") != "angle_mean")["verdict"]) == {"no evidence"}


def agrees(words: str, p_adjusted: float, low: float, high: float) -> bool:
    """Whether the words said beside an interval and an adjusted p-value agree with both."""
    excludes, below = low > 0 or high < 0, p_adjusted < predictors.ALPHA
    if excludes and below:
        return words.startswith("evidence")
    if excludes:
        return "interval excludes 0, but not after adjusting for 5 statistics" in words
    return words.startswith("no evidence") or ("holds 0" in words and "no evidence" in words)


@pytest.mark.parametrize("truth", [t for t, _ in TRUTHS])
@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_the_words_beside_every_interval_agree_with_it(truth, seed) -> None:
    table = predictors.correlations(simulated_study(truth, seed=seed), "corruption_accuracy", resamples=300)
    for row in table.iter_rows(named=True):
        assert agrees(row["raw_words"], row["p_adjusted"], row["low"], row["high"]), row
        assert agrees(row["partial_words"], row["partial_p_adjusted"], row["partial_low"], row["partial_high"]), row
        partial_evidence = row["partial_words"].startswith("evidence")
        assert (row["verdict"] == "associated beyond clean accuracy") == partial_evidence


def test_an_interval_that_excludes_0_only_before_adjusting_is_said_so() -> None:
    words = predictors.evidence_words(0.12, -0.83, -0.09, 5)
    assert words == "its interval excludes 0, but not after adjusting for 5 statistics (adjusted p = 0.12)"
    assert predictors.evidence_words(0.01, -0.2, 0.4, 5).endswith("holds 0: no evidence")
    assert predictors.evidence_words(0.01, 0.1, 0.4, 5).startswith("evidence")


def test_without_a_clean_accuracy_spread_the_association_is_not_controlled() -> None:
    points = simulated_study("clean only").with_columns(pl.lit(0.9).alias("clean_accuracy"))
    table = predictors.correlations(points, "corruption_accuracy", resamples=200)
    assert table.filter(pl.col("statistic") == "angle_mean")["verdict"].item() == "associated, not controlled"


def test_paper_finding_tests_supermask_models_against_the_other_pruned_ones() -> None:
    points = pl.DataFrame({"method": ["dense", "biprop", "biprop", "edgepopup", "lrr", "lrr", "lrr"],
                           "angle_mean": [0.0, 50.0, 52.0, 51.0, 40.0, 42.0, 41.0],
                           "angle_std": [9.0, 8.0, 6.0, 7.0, 8.0, 7.0, 6.0],
                           "corruption_accuracy": [0.0, 0.6, 0.55, 0.5, 0.8, 0.85, 0.9]})
    finding = predictors.paper_finding(points)
    welch = sps.ttest_ind([50.0, 52.0, 51.0], [40.0, 42.0, 41.0], equal_var=False)
    row = finding.row(0, named=True)
    assert (row["effect"], row["p_value"]) == pytest.approx((10.0, welch.pvalue))
    assert (row["supermask_models"], row["other_models"]) == (3, 3)
    assert finding["verdict"].to_list() == ["supported", "not shown", "contradicted"]
    assert set(predictors.paper_finding(points.filter(pl.col("method") == "lrr"))["verdict"]) == {"cannot test"}
    # A model quantized to int8 (and nothing else) is not pruned: it is not among the other pruned models.
    quantized = pl.concat([points, pl.DataFrame({"method": ["int8"], "angle_mean": [0.0], "angle_std": [99.0],
                                                 "corruption_accuracy": [0.99]})])
    assert predictors.paper_finding(quantized).equals(finding)
    chain = pl.concat([points, pl.DataFrame({"method": ["channel+int8"], "angle_mean": [41.5], "angle_std": [7.0],
                                             "corruption_accuracy": [0.8]})])
    assert predictors.paper_finding(chain)["other_models"].to_list() == [4, 4, 4]


def test_paper_finding_words_an_interval_that_excludes_0_before_adjusting() -> None:
    # Robustness differs at p = 0.03 before adjusting, 0.06 after Holm over the three tests: "not shown", and
    # the verdict says why its printed interval excludes 0.
    points = pl.DataFrame({"method": ["biprop"] * 4 + ["lrr"] * 4, "angle_mean": [50, 51, 52, 53, 40, 41, 42, 43],
                           "angle_std": [7.0, 8.0, 6.0, 7.5, 7.0, 8.0, 6.5, 7.0],
                           "corruption_accuracy": [0.80, 0.84, 0.78, 0.83, 0.74, 0.79, 0.73, 0.77]})
    row = predictors.paper_finding(points).row(2, named=True)
    assert row["p_value"] < 0.05 <= row["p_adjusted"] and row["low"] > 0
    assert row["verdict"] == "not shown: the interval excludes 0, but not after adjusting for 3 tests"


# -- pages ------------------------------------------------------------------------------------------------

def page_text(app: AppTest) -> str:
    return "\n".join([m.value for m in app.markdown] + [c.value for c in app.caption])


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_matrix_shows_groups_with_significance_and_switches_to_models(open_page, study) -> None:
    app = open_page(study, PAGES["matrix"].script)
    (chart,) = app.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    assert spec["encoding"]["opacity"]["field"] == "opacity" and "not significant" in spec["transform"][0]["calculate"]
    tooltips = {t.get("title", t.get("field")) for t in spec["encoding"]["tooltip"]}
    assert {"p-value", "accuracy 95% low", "drop 95% high", "seeds"} <= tooltips
    cells = app.dataframe[0].value  # the matrix's table
    assert set(cells["group_id"]) == {"a-dense-0", "a-lrr-90", "a-biprop-80"} and set(cells["seeds"]) == {3}
    assert "Holm" in page_text(app) and "groups (mean over seeds)" in page_text(app)
    assert {"markdown", "latex"} <= {b.label for b in app.get("download_button")}

    app.segmented_control(key="matrix_correction").set_value("bh").run()
    assert "Benjamini-Hochberg" in page_text(app)
    app.sidebar.segmented_control(key="level").set_value("model").run()
    assert not app.exception
    assert app.dataframe[0].value["model_id"].nunique() == len(MODELS)
    # Random accuracies around 0.9 barely hurt the dense models: relative CE is left blank, with the reason.
    app.sidebar.selectbox(key="metric").set_value("relative_ce").run()
    blank = [c.value for c in app.caption if c.value.startswith("Blank ")]
    assert blank and all("divides by nearly 0" in c for c in blank)


def test_overview_lists_groups_and_pie_counts(open_page, study) -> None:
    app = open_page(study)
    tables = [frame.value for frame in app.dataframe]
    groups = next(t for t in tables if "mean corruption" in t.columns)
    assert sorted(groups["row"]) == ["a-biprop-80", "a-dense-0", "a-lrr-90"]
    assert all(value.count("[") == 1 and value.endswith("]") for value in groups["clean"])
    pie = next(t for t in tables if "pie_samples" in t.columns)
    assert sorted(pie["method"]) == ["biprop", "lrr"] and set(pie["replicates"]) == {3}
    assert "Hooker et al. 2019" in page_text(app) and "flipped by pruning" not in page_text(app)


def test_similarity_averages_agreement_over_seeds(open_page, study) -> None:
    app = open_page(study, PAGES["similarity"].script)
    titles = [json.loads(c.proto.spec)["title"] for c in app.get("vega_lite_chart")]
    assert any("Groups that get the same samples right" in str(t) for t in titles)
    pairs = next(f.value for f in app.dataframe if "kappa_low" in f.value.columns)
    between, within = pairs[pairs["group_a"] != pairs["group_b"]], pairs[pairs["group_a"] == pairs["group_b"]]
    assert set(between["pairs"]) == {9} and set(within["pairs"]) == {3}  # 3 x 3 seeds; 3 pairs of 3 seeds
    assert len(within) == 3 and (within["kappa"] < 1).all()  # the diagonal: seeds agree, not perfectly
    assert (pairs["kappa_low"] <= pairs["kappa"]).all() and (pairs["kappa"] <= pairs["kappa_high"]).all()


def test_predictors_page_words_its_verdict_and_tests_the_paper(open_page, study) -> None:
    app = open_page(study, PAGES["predictors"].script)
    assert app.title[0].value == "Robustness predictors"
    text = page_text(app)
    assert "Spearman's rho" in text and "partial rho controlling for clean accuracy" in text
    assert any(f"**{v.capitalize()}**" in text for v in predictors.VERDICTS) and "9 models in 3 groups" in text
    assert "Holm" in text
    (spec,) = [json.loads(c.proto.spec) for c in app.get("vega_lite_chart")]
    assert spec["encoding"]["color"]["field"] == "method"
    app.toggle(key="predictor_paper").set_value(True).run()
    assert not app.exception
    verdicts = [m.value for m in (*app.success, *app.warning)]
    assert len(verdicts) == 1 and "3 supermask and 3 other pruned models" in verdicts[0]
    assert "Welch" in page_text(app)
    app.segmented_control(key="predictor_correction").set_value("bh").run()
    app.selectbox(key="predictor_statistic").set_value("within_class_angle_std").run()
    app.segmented_control(key="predictor_setting").set_value("selected").run()
    assert not app.exception and "Benjamini-Hochberg" in page_text(app)


def test_predictors_page_explains_too_few_models(open_page, tmp_path) -> None:
    small = write_study(tmp_path, models=MODELS[:2], num_samples=20)
    app = open_page(small, PAGES["predictors"].script)
    assert "at least 3 models" in app.info[0].value


def test_overview_says_pie_reduces_to_flipped_by_pruning_with_one_seed(open_page, tmp_path) -> None:
    single = write_study(tmp_path, models=[MODELS[0], MODELS[3], MODELS[6]], num_samples=30)
    app = open_page(single)
    assert "reduces to \"flipped by pruning\"" in page_text(app)


def test_method_correlations_is_correlations_of_the_selected_methods_models(catalog) -> None:
    """The predictors page asks one named query per selection (cached), the same table as before."""
    points = predictors.model_geometry(catalog, "clean", 0)
    methods = tuple(sorted(set(points["method"].to_list())))[:3]
    chosen = points.filter(pl.col("method").is_in(list(methods))).sort("model_id")
    target = next(iter(predictors.TARGETS))
    assert predictors.method_correlations(catalog, "clean", 0, methods, target, "bh").equals(
        predictors.correlations(chosen, target, "bh"))
