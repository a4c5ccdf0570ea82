"""analysis.uncertainty and `python -m compute report` against direct computation on the raw Parquet files
(read with pyarrow and Polars, never DuckDB), on a small store with three seeds per group."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

from analysis import matrices, report, uncertainty
from store import layout, vocabulary
from testkit.direct import direct_rows
from testkit.study import CORRUPTIONS, write_study

ROOT = Path(__file__).resolve().parents[2]
# Three seeds of dense and lrr-90, one of ft-50: groups with replicates and a group of one.
MODELS = [("dense-s0", "dense", 0.0, 0), ("dense-s1", "dense", 0.0, 1), ("dense-s2", "dense", 0.0, 2),
          ("lrr-90-s0", "lrr", 0.9, 0), ("lrr-90-s1", "lrr", 0.9, 1), ("lrr-90-s2", "lrr", 0.9, 2),
          ("ft-50-s1", "ft", 0.5, 1)]


def accuracy(model_id: str, corruption: str) -> float:
    """lrr loses a lot under fog (a clear drop), otherwise every model is alike."""
    return 0.55 if model_id.startswith("lrr") and corruption == "fog" else 0.9


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("replicates"), models=MODELS, accuracy=accuracy, num_samples=300)


@pytest.fixture(scope="module")
def direct(study) -> pl.DataFrame:
    """Every prediction row, with the model's method, sparsity, seed and reference: its base, the dense model
    of its seed (testkit.study records it so); dense models have none."""
    models = pl.from_arrow(pq.read_table(study / layout.MODELS)).select("model_id", "method", "target_sparsity", "seed")
    return direct_rows(study).join(models, on="model_id").with_columns(
        pl.when(pl.col("method") != "dense").then(pl.format("dense-s{}", pl.col("seed"))).alias("reference_model_id"))


def test_groups_join_the_seeds_of_one_arch_method_and_sparsity(catalog) -> None:
    groups = uncertainty.groups(catalog)
    members = groups.group_by("group_id").agg(pl.col("model_id").sort()).sort("group_id")
    assert dict(members.iter_rows()) == {"a-dense-0": ["dense-s0", "dense-s1", "dense-s2"],
                                         "a-ft-50": ["ft-50-s1"],
                                         "a-lrr-90": ["lrr-90-s0", "lrr-90-s1", "lrr-90-s2"]}


def test_model_cells_match_a_direct_paired_computation(catalog, direct) -> None:
    dense = direct.filter(pl.col("method") == "dense").select(
        pl.col("model_id").alias("reference_model_id"), "corruption", "severity", "sample_id",
        pl.col("correct").alias("reference_correct"))
    # Dense models have no reference: their rows stay, unpaired.
    pairs = direct.join(dense, on=["reference_model_id", "corruption", "severity", "sample_id"], how="left")
    expected = pairs.group_by("model_id", "corruption", "severity").agg(
        pl.len().alias("n"), pl.col("correct").sum().alias("k"),
        (pl.col("correct") & ~pl.col("reference_correct")).sum().alias("only_model"),
        (~pl.col("correct") & pl.col("reference_correct")).sum().alias("only_reference"),
        pl.col("reference_correct").mean().alias("reference_accuracy"))
    cells = uncertainty.model_cells(catalog).join(expected, on=["model_id", "corruption", "severity"])
    assert cells.height == direct.select("model_id", "corruption", "severity").unique().height
    for row in cells.iter_rows(named=True):
        assert row["accuracy"] == pytest.approx(row["k"] / row["n"])
        wilson = sps.binomtest(row["k"], row["n"]).proportion_ci(method="wilson")
        assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx((wilson.low, wilson.high))
        if row["method"] == "dense":
            assert row["p_value"] is None and row["drop_vs_reference"] is None and row["reference_accuracy"] is None
            continue
        b, c = row["only_reference"], row["only_model"]
        assert row["drop_vs_reference"] == pytest.approx(row["reference_accuracy"] - row["accuracy"])
        assert row["drop_vs_reference"] == pytest.approx((b - c) / row["n"])
        assert row["p_value"] == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0)
        assert row["drop_low"] <= row["drop_vs_reference"] <= row["drop_high"]


def test_group_cells_average_the_seeds_with_a_t_interval(catalog, direct) -> None:
    per_model = direct.group_by("model_id", "method", "corruption", "severity").agg(
        pl.col("correct").mean().alias("accuracy"))
    groups = uncertainty.matrix_cells(catalog, "group")
    lrr = groups.filter(pl.col("group_id") == "a-lrr-90")
    for row in lrr.iter_rows(named=True):
        values = per_model.filter((pl.col("method") == "lrr") & (pl.col("corruption") == row["corruption"])
                                  & (pl.col("severity") == row["severity"]))["accuracy"].to_numpy()
        low, high = sps.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values))
        assert row["seeds"] == 3 and row["accuracy"] == pytest.approx(values.mean())
        assert row["accuracy_low"] == pytest.approx(max(low, 0.0)) and row["accuracy_high"] == pytest.approx(min(high, 1))
        assert row["drop_low"] <= row["drop_vs_reference"] <= row["drop_high"]
    # lrr under fog is ~35 points worse on every seed: significant after Holm over every cell.
    fog = uncertainty.with_significance(groups, "holm").filter(
        (pl.col("group_id") == "a-lrr-90") & (pl.col("corruption") == "fog"))
    assert fog["significant"].all() and (fog["drop_low"] > 0.2).all()
    # A group of one seed keeps the model's own Wilson interval and McNemar p-value.
    single = groups.filter(pl.col("group_id") == "a-ft-50").sort("corruption", "severity")
    model = uncertainty.model_cells(catalog).filter(pl.col("model_id") == "ft-50-s1").sort("corruption", "severity")
    assert single["accuracy_low"].to_list() == pytest.approx(model["accuracy_low"].to_list())
    assert single["p_value"].to_list() == pytest.approx(model["p_value"].to_list())


def test_group_drop_is_tested_over_seeds_with_the_seed_as_the_unit(catalog) -> None:
    models = uncertainty.model_cells(catalog).filter(pl.col("method") == "lrr")
    groups = uncertainty.matrix_cells(catalog, "group").filter(pl.col("group_id") == "a-lrr-90")
    for row in groups.iter_rows(named=True):
        drops = models.filter((pl.col("corruption") == row["corruption"]) & (pl.col("severity") == row["severity"])
                              )["drop_vs_reference"].to_numpy()
        low, high = sps.t.interval(0.95, len(drops) - 1, loc=drops.mean(), scale=sps.sem(drops))
        assert (row["drop_low"], row["drop_high"]) == pytest.approx((low, high))
        assert row["p_value"] == pytest.approx(sps.ttest_1samp(drops, 0.0).pvalue)
        assert row["paired_seeds"] == 3


def test_with_significance_adjusts_over_the_cells_given(catalog) -> None:
    cells = uncertainty.matrix_cells(catalog, "model").filter(pl.col("method") != "dense")
    shown = cells.filter(pl.col("corruption") == "fog")
    holm = uncertainty.with_significance(shown, "holm")
    p = shown["p_value"].to_numpy()
    order = np.argsort(p)
    expected = np.minimum(1, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    assert holm["p_adjusted"].to_numpy()[order] == pytest.approx(expected)
    bh = uncertainty.with_significance(shown, "bh")
    assert bh["p_adjusted"].to_numpy() == pytest.approx(sps.false_discovery_control(p))
    with pytest.raises(ValueError, match="bonferroni"):
        uncertainty.with_significance(shown, "bonferroni")


def direct_report(direct: pl.DataFrame) -> pl.DataFrame:
    """Per (model, column) the pooled accuracy and the relative mCE, straight from the rows."""
    corrupted = direct.filter(pl.col("corruption") != layout.CLEAN)
    columns = pl.concat([
        direct.group_by("model_id", pl.col("corruption").alias("column_name")).agg(
            pl.col("correct").sum().alias("k"), pl.len().alias("n")),
        corrupted.group_by("model_id").agg(pl.lit("mean corruption").alias("column_name"),
                                           pl.col("correct").sum().alias("k"), pl.len().alias("n")),
    ])
    error = direct.group_by("model_id", "reference_model_id", "corruption", "severity").agg(
        (1 - pl.col("correct").mean()).alias("error"))
    clean = error.filter(pl.col("corruption") == layout.CLEAN).select("model_id", pl.col("error").alias("clean"))
    error = error.join(clean, on="model_id").with_columns((pl.col("error") - pl.col("clean")).alias("rise"))
    dense = error.select(pl.col("model_id").alias("reference_model_id"), "corruption", "severity",
                         pl.col("rise").alias("reference_rise"))
    ce = (error.filter(pl.col("corruption") != layout.CLEAN).join(dense, on=["reference_model_id", "corruption", "severity"])
          .group_by("model_id", "corruption").agg(  # matrices: a denominator near 0 leaves the corruption out
               pl.when(pl.col("reference_rise").mean() >= matrices.MIN_REFERENCE_RISE)
               .then(pl.col("rise").sum() / pl.col("reference_rise").sum()).alias("ce"))
          .group_by("model_id").agg(pl.col("ce").mean().alias("relative_mce")))
    return columns.with_columns((pl.col("k") / pl.col("n")).alias("accuracy")), ce


def test_report_per_model_equals_a_direct_computation(catalog, direct) -> None:
    columns, ce = direct_report(direct)
    table = report.report_table(catalog, "model")
    families = {report.family_column(vocabulary.CORRUPTIONS[c].family) for c in CORRUPTIONS}
    assert set(table["column_name"]) == {"clean", *CORRUPTIONS, *families, report.MEAN, report.ERROR, report.DROP,
                                         report.RELATIVE}
    for model_id, column, k, n, value in columns.iter_rows():
        row = table.filter((pl.col("row") == model_id) & (pl.col("column_name") == column)).row(0, named=True)
        wilson = sps.binomtest(k, n).proportion_ci(method="wilson")
        assert (row["mean"], row["low"], row["high"]) == pytest.approx((value, wilson.low, wilson.high))
        if column == report.MEAN:
            error = table.filter((pl.col("row") == model_id) & (pl.col("column_name") == report.ERROR)).row(0, named=True)
            assert (error["mean"], error["low"], error["high"]) == pytest.approx((1 - value, 1 - wilson.high,
                                                                                   1 - wilson.low))
    for model_id, value in ce.iter_rows():
        row = table.filter((pl.col("row") == model_id) & (pl.col("column_name") == "relative mCE")).row(0, named=True)
        assert row["mean"] is None if value is None else row["mean"] == pytest.approx(value)
    dense = table.filter(pl.col("row").str.starts_with("dense") & (pl.col("column_name") == "relative mCE"))
    assert dense["mean"].to_list() == [None] * 3  # a model without a reference has no relative mCE


def test_report_tests_each_pruned_cell_against_its_reference_on_the_same_samples(catalog, direct) -> None:
    table = report.report_table(catalog, "model")
    fog = direct.filter(pl.col("corruption") == "fog")
    for model_id in ("lrr-90-s0", "ft-50-s1"):
        pairs = fog.filter(pl.col("model_id") == model_id).join(
            fog.select(pl.col("model_id").alias("reference_model_id"), "severity", "sample_id",
                       pl.col("correct").alias("reference_correct")), on=["reference_model_id", "severity", "sample_id"])
        only_model = int((pairs["correct"] & ~pairs["reference_correct"]).sum())
        only_reference = int((~pairs["correct"] & pairs["reference_correct"]).sum())
        expected = sps.binomtest(only_model, only_model + only_reference).pvalue
        row = table.filter((pl.col("row") == model_id) & (pl.col("column_name") == "fog")).row(0, named=True)
        assert row["p_value"] == pytest.approx(expected)
    dense = table.filter(pl.col("method") == "dense")
    assert dense["p_value"].null_count() == dense.height


def test_report_accuracy_drop_is_clean_minus_corrupted_with_newcombes_interval(catalog, direct) -> None:
    table = report.report_table(catalog, "model")
    rows = direct.filter(pl.col("model_id") == "ft-50-s1")
    clean, corrupted = rows.filter(pl.col("corruption") == layout.CLEAN), rows.filter(pl.col("corruption") != layout.CLEAN)
    p1, p2 = clean["correct"].mean(), corrupted["correct"].mean()
    w1 = sps.binomtest(int(clean["correct"].sum()), clean.height).proportion_ci(method="wilson")
    w2 = sps.binomtest(int(corrupted["correct"].sum()), corrupted.height).proportion_ci(method="wilson")
    low = p1 - p2 - np.hypot(p1 - w1.low, w2.high - p2)
    high = p1 - p2 + np.hypot(w1.high - p1, p2 - w2.low)
    row = table.filter((pl.col("row") == "ft-50-s1") & (pl.col("column_name") == report.DROP)).row(0, named=True)
    assert (row["mean"], row["low"], row["high"]) == pytest.approx((p1 - p2, low, high))


def test_report_per_group_is_mean_and_t_interval_over_seeds(catalog, direct) -> None:
    columns, _ = direct_report(direct)
    table = report.report_table(catalog, "group")
    for column in ("clean", "fog", "mean corruption"):
        values = columns.filter(pl.col("model_id").str.starts_with("lrr") & (pl.col("column_name") == column)
                                ).sort("model_id")["accuracy"].to_numpy()
        low, high = sps.t.interval(0.95, 2, loc=values.mean(), scale=sps.sem(values))
        row = table.filter((pl.col("row") == "a-lrr-90") & (pl.col("column_name") == column)).row(0, named=True)
        assert row["seeds"] == 3
        assert (row["mean"], row["low"], row["high"]) == pytest.approx((values.mean(), max(low, 0), min(high, 1)))


def test_report_command_prints_every_format(study, catalog, cli) -> None:
    csv = cli("report", "--store", str(study), "--by", "model", "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    printed = pl.read_csv(io.StringIO(csv.stdout))
    expected = report.select_columns(report.report_table(catalog, "model"))
    assert printed.height == expected.height
    assert printed["mean"].to_list() == pytest.approx(expected["mean"].to_list(), nan_ok=True)
    tex = cli("report", "--store", str(study), "--format", "latex", "--columns", "summary,families")
    assert tex.returncode == 0 and r"\begin{table}" in tex.stdout and r"\usepackage{booktabs}" in tex.stdout
    assert "Student $t$" in tex.stdout and "Weather" in tex.stdout and "relative mCE" in tex.stdout
    lines = report.render_report(report.report_table(catalog, "group"), "markdown").splitlines()
    assert lines[0].startswith("| row | model | seeds |") and "mean corruption error" in lines[0]
    assert any(line.startswith("| a-lrr-90 | lrr 90 % | 3 |") and "[" in line and "†" in line for line in lines)
    assert any("Holm" in line for line in lines)


def test_report_command_names_a_missing_store(tmp_path, cli) -> None:
    result = cli("report", "--store", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "nowhere" in result.stderr


# -- pruning-identified exemplars (Hooker et al. 2019) --------------------------------------------------

def direct_modal(direct: pl.DataFrame, corruption: str, severity: int) -> pl.DataFrame:
    """Per (method, sparsity, sample): the most frequent prediction over the seeds, ties to the smaller
    class, counted with Python's collections (no DuckDB)."""
    from collections import Counter

    setting = direct.filter((pl.col("corruption") == corruption) & (pl.col("severity") == severity))
    rows = []
    for (method, sparsity, sample_id), part in setting.group_by("method", "target_sparsity", "sample_id"):
        votes = Counter(part["pred"].to_list())
        top = max(votes.values())
        rows.append((method, sparsity, sample_id, min(c for c, v in votes.items() if v == top)))
    return pl.DataFrame(rows, schema=["method", "target_sparsity", "sample_id", "modal"], orient="row")


@pytest.mark.parametrize("setting", [(layout.CLEAN, 0), ("fog", 3)])
def test_pie_preset_matches_a_direct_modal_prediction(catalog, direct, setting) -> None:
    from analysis import presets

    modal = direct_modal(direct, *setting)
    dense = modal.filter(pl.col("method") == "dense").select("sample_id", pl.col("modal").alias("dense"))
    expected = modal.filter(pl.col("method") != "dense").join(dense, on="sample_id").filter(
        pl.col("modal") != pl.col("dense"))
    found = presets.pruning_identified_exemplars(catalog, *setting)
    assert sorted(found.select("method", "sample_id", "pruned_modal_pred", "reference_modal_pred").iter_rows()) == \
        sorted(expected.select("method", "sample_id", "modal", "dense").iter_rows())
    assert set(found["replicates"].to_list()) <= {1, 3} and set(found["reference_replicates"]) == {3}
    counts = presets.pie_counts(catalog, *setting)
    per_method = dict(expected.group_by("method").len().iter_rows())
    assert dict(counts.select("method", "pie_samples").iter_rows()) == {m: per_method.get(m, 0) for m in ("ft", "lrr")}
    assert dict(counts.select("method", "single_seed").iter_rows()) == {"ft": True, "lrr": False}
    only_lrr = presets.pruning_identified_exemplars(catalog, *setting, method="lrr")
    assert only_lrr.height == per_method.get("lrr", 0)


def test_the_seeds_study_makes_one_model_per_seed_with_the_seed_in_its_id() -> None:
    from compute.study_file import Study

    study = Study.from_toml(ROOT / "studies" / "digits-seeds.toml")
    assert study.seeds == (0, 1, 2)
    ids = {study.model_id(plan.method, sparsity, seed) for plan, sparsity, seed in study.jobs()}
    assert len(ids) == 3 * 3 and {i.rsplit("-", 1)[1] for i in ids} == {"s0", "s1", "s2"}
    assert {study.model_id("dense", 0.0, seed) for seed in study.seeds} == {
        "small_cnn-dense-s0", "small_cnn-dense-s1", "small_cnn-dense-s2"}


def test_report_bolds_the_best_and_every_row_it_cannot_be_told_apart_from() -> None:
    # clean: a and b overlap (both bold), c is distinguishable; fog: every interval overlaps the best (no
    # bold); relative mCE: no intervals, nothing is distinguishably best.
    table = pl.DataFrame({"row": ["a", "b", "c"] * 3, "method": ["dense", "lrr", "ft"] * 3,
                          "target_sparsity": [0.0, 0.9, 0.5] * 3, "seeds": [1] * 9,
                          "column_name": ["clean"] * 3 + ["fog"] * 3 + [report.RELATIVE] * 3,
                          "mean": [0.95, 0.94, 0.80, 0.70, 0.68, 0.60, 1.0, 1.2, 12.5],
                          "low": [0.93, 0.92, 0.75, 0.60, 0.58, 0.50, None, None, None],
                          "high": [0.97, 0.96, 0.85, 0.80, 0.78, 0.70, None, None, None],
                          "p_value": [None, 0.5, 0.001, None, 0.5, 0.5, None, None, None]})
    marked = report.with_marks(table)
    assert marked["best"].to_list() == [True, True, False, False, False, False, False, False, False]
    assert marked["significant"].to_list() == [None, False, True, None, False, False, None, None, None]
    markdown = report.render_report(table, "markdown")
    assert "| a | dense | 1 | **0.950** [0.930, 0.970] | 0.700 [0.600, 0.800] | 1.000 |" in markdown
    assert "| c | ft 50 % | 1 | 0.800 † [0.750, 0.850] | 0.600 [0.500, 0.700] | 12.500 |" in markdown
    assert "every row whose interval overlaps the best one's" in markdown
