"""The analysis package (matrices, agreement, embeddings, presets) against direct computation: every figure is recomputed here from the Parquet files read
with pyarrow (testkit.direct.direct_rows) using Polars, NumPy and scikit-learn, never DuckDB."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import cohen_kappa_score

from analysis import agreement, embeddings, matrices, presets
from analysis.filters import FilterError
from store import layout, vocabulary, writer
from store.catalog import Catalog
from testkit.direct import direct_rows
from testkit.study import (
    CORRUPTIONS,
    MODELS,
    NON_FINITE,
    NUM_CLASSES,
    NUM_SAMPLES,
    SETTINGS,
    SEVERITIES,
    write_study,
)

KEYS = ["model_id", "corruption", "severity"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def direct(study) -> pl.DataFrame:
    """Every prediction row with its model's method and sparsity, and the sample's label name."""
    models = pl.from_arrow(pq.read_table(study / layout.MODELS)).select("model_id", "method", "target_sparsity")
    samples = pl.from_arrow(pq.read_table(study / layout.SAMPLES)).select("sample_id", "label_name")
    return direct_rows(study).join(models, on="model_id").join(samples, on="sample_id")


def cell_means(direct: pl.DataFrame, column: str = "correct") -> dict[tuple[str, str, int], float]:
    """Mean of `column` per (model, corruption, severity), over finite rows unless it is `correct`."""
    rows = direct if column == "correct" else direct.filter(pl.col("finite"))
    frame = rows.group_by(KEYS).agg(pl.col(column).cast(pl.Float64).mean().alias("value"))
    return {(m, c, s): v for m, c, s, v in frame.iter_rows()}


def close(actual, expected) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None
    # 1e-6, not 1e-9: the matrix sums extraction's own angles (completion markers), the direct rows derive
    # them again from the stored float32 logits (store format 2); both agree to ~1e-8.
    return actual is not None and math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-5)


# -- evaluation matrices ------------------------------------------------------------------------------

def test_accuracy_matrix_per_model_matches_direct_computation(catalog, direct) -> None:
    matrix = matrices.accuracy_matrix(catalog)
    accuracy = cell_means(direct)
    assert matrix.height == len(MODELS) * len(SETTINGS)
    assert matrix["method"][0] == "dense"
    for row in matrix.iter_rows(named=True):
        key = (row["model_id"], row["corruption"], row["severity"])
        # testkit.study records "dense" as every pruned model's base; the dense model has no reference.
        dense = None if row["model_id"] == "dense" else accuracy[("dense", row["corruption"], row["severity"])]
        clean = accuracy[(row["model_id"], layout.CLEAN, 0)]
        assert close(row["accuracy"], accuracy[key])
        assert close(row["error"], 1 - accuracy[key])
        assert close(row["reference_accuracy"], dense)
        assert close(row["drop_vs_reference"], None if dense is None else dense - accuracy[key])
        assert close(row["drop_vs_clean"], clean - accuracy[key])
        assert row["samples"] == NUM_SAMPLES


def test_accuracy_matrix_per_method_averages_the_models_of_a_group(catalog, direct) -> None:
    matrix = matrices.accuracy_matrix(catalog, group_by="method")
    accuracy = cell_means(direct)
    lrr = matrix.filter((pl.col("method") == "lrr") & (pl.col("corruption") == "fog") & (pl.col("severity") == 3))
    assert lrr["models"].to_list() == [2]
    expected = (accuracy[("lrr-a", "fog", 3)] + accuracy[("lrr-b", "fog", 3)]) / 2
    assert close(lrr["accuracy"][0], expected)
    assert close(lrr["drop_vs_reference"][0], accuracy[("dense", "fog", 3)] - expected)
    assert matrix.height == 4 * len(SETTINGS)  # dense, lrr 0.9, ft 0.5, ft 0.8


def test_metric_matrix_averages_finite_rows_only(catalog, direct) -> None:
    for metric in ("angle_true", "margin", "p_true"):
        matrix = matrices.metric_matrix(catalog, metric)
        means = cell_means(direct, metric)
        for row in matrix.iter_rows(named=True):
            key = (row["model_id"], row["corruption"], row["severity"])
            assert close(row["value"], means[key]), (metric, key)
            reference = None if key[0] == "dense" else means[key] - means[("dense", *key[1:])]
            assert close(row["delta_vs_reference"], reference)
    angle = matrices.metric_matrix(catalog, "angle_true").filter(
        (pl.col("model_id") == NON_FINITE[0]) & (pl.col("corruption") == NON_FINITE[1]) & (pl.col("severity") == 3))
    assert angle["samples"][0] == NUM_SAMPLES - len(NON_FINITE[3])
    assert math.isfinite(angle["value"][0])


def test_unknown_metric_and_grouping_are_refused_by_name(catalog) -> None:
    with pytest.raises(ValueError, match="unknown metric 'logits'.*angle_true"):
        matrices.metric_matrix(catalog, "logits")
    with pytest.raises(ValueError, match="unknown grouping"):
        matrices.accuracy_matrix(catalog, group_by="arch; DROP VIEW rows")


def direct_errors(direct: pl.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """(CE_c, relative CE_c) per (model, corruption), from the definitions in reference/cifar10c.md."""
    error = {key: 1 - value for key, value in cell_means(direct).items()}
    result = {}
    for model_id, _, _, _ in MODELS:
        for corruption in CORRUPTIONS:
            model = sum(error[(model_id, corruption, s)] for s in SEVERITIES)
            dense = sum(error[("dense", corruption, s)] for s in SEVERITIES)
            relative = sum(error[(model_id, corruption, s)] - error[(model_id, layout.CLEAN, 0)] for s in SEVERITIES)
            reference_relative = sum(error[("dense", corruption, s)] - error[("dense", layout.CLEAN, 0)]
                                 for s in SEVERITIES)
            guarded = reference_relative / len(SEVERITIES) >= matrices.MIN_REFERENCE_RISE
            # the dense model is every pruned model's base (testkit.study) and has no reference itself
            result[(model_id, corruption)] = ((None, None) if model_id == "dense"
                                              else (model / dense, relative / reference_relative if guarded else None))
    return result


def test_corruption_errors_follow_the_definitions(catalog, direct) -> None:
    frame = matrices.corruption_errors(catalog)
    expected = direct_errors(direct)
    assert frame.height == len(expected)
    for row in frame.iter_rows(named=True):
        ce, relative = expected[(row["model_id"], row["corruption"])]
        assert close(row["ce"], ce) and close(row["relative_ce"], relative)
        assert row["severities"] == len(SEVERITIES) and row["common"]
    dense = frame.filter(pl.col("model_id") == "dense")
    assert dense["ce"].null_count() == dense.height  # nothing to compare the reference with


def test_model_summary_follows_the_definitions(catalog, direct) -> None:
    summary = matrices.model_summary(catalog)
    accuracy = cell_means(direct)
    errors = direct_errors(direct)
    corrupted = [(c, s) for c, s in SETTINGS if c != layout.CLEAN]
    assert summary["model_id"].to_list()[0] == "dense" and summary.height == len(MODELS)
    for row in summary.iter_rows(named=True):
        model_id = row["model_id"]
        clean = accuracy[(model_id, layout.CLEAN, 0)]
        mean = np.mean([accuracy[(model_id, *setting)] for setting in corrupted])
        reference_mean = np.mean([accuracy[("dense", *setting)] for setting in corrupted])
        assert close(row["clean_accuracy"], clean)
        assert close(row["corruption_accuracy"], mean)
        if model_id == "dense":  # no reference: no drop, no mCE
            assert (row["clean_drop_vs_reference"], row["corruption_drop_vs_reference"], row["mce"]) == (None,) * 3
            continue
        assert close(row["clean_drop_vs_reference"], accuracy[("dense", layout.CLEAN, 0)] - clean)
        assert close(row["corruption_drop_vs_reference"], reference_mean - mean)
        assert close(row["mce"], np.mean([errors[(model_id, c)][0] for c in CORRUPTIONS]))
        kept = [errors[(model_id, c)][1] for c in CORRUPTIONS if errors[(model_id, c)][1] is not None]
        assert close(row["relative_mce"], np.mean(kept) if kept else None)
        assert len(row["relative_mce_left_out"]) == len(CORRUPTIONS) - len(kept)
        # only 3 of the 15 common corruptions are present
        assert row["common_corruption_accuracy"] is None and row["common_mce"] is None


def test_common_corruption_figures_use_exactly_the_15_common_ones(tmp_path) -> None:
    names = (*vocabulary.COMMON_CORRUPTIONS, "saturate")
    settings = [(layout.CLEAN, 0)] + [(c, 1) for c in names]
    models = MODELS[:2]
    root = write_study(tmp_path, models=models, settings=settings, num_samples=30,
                       accuracy=lambda m, c: 0.3 if c == "saturate" else 0.8)
    summary = matrices.model_summary(Catalog(root))
    accuracy = cell_means(direct_rows(root))
    for row in summary.iter_rows(named=True):
        model_id = row["model_id"]
        common = [accuracy[(model_id, c, 1)] for c in vocabulary.COMMON_CORRUPTIONS]
        every = [accuracy[(model_id, c, 1)] for c in names]
        assert close(row["common_corruption_accuracy"], np.mean(common))
        assert close(row["corruption_accuracy"], np.mean(every))
        ce = [(1 - accuracy[(model_id, c, 1)]) / (1 - accuracy[("dense", c, 1)]) for c in vocabulary.COMMON_CORRUPTIONS]
        assert close(row["common_mce"], None if model_id == "dense" else np.mean(ce))


def test_a_reference_without_errors_gives_null_not_infinite_ce(tmp_path) -> None:
    settings = [(layout.CLEAN, 0), ("fog", 1), ("fog", 3)]
    root = write_study(tmp_path, models=MODELS[:2], settings=settings,
                       accuracy=lambda m, c: 1.0 if m == "dense" else 0.7)
    catalog = Catalog(root)
    errors = matrices.corruption_errors(catalog)
    assert errors["ce"].null_count() == errors.height
    assert errors["relative_ce"].null_count() == errors.height
    summary = matrices.model_summary(catalog)
    assert summary["mce"].null_count() == summary["relative_mce"].null_count() == summary.height
    assert summary.filter(pl.col("model_id") == "lrr-a")["clean_drop_vs_reference"][0] > 0


def test_relative_ce_leaves_out_a_corruption_that_barely_hurts_the_reference(tmp_path) -> None:
    # fog costs the dense model one point of accuracy: relative CE would divide by about 0.01.
    levels = {("dense", "clean"): 0.9, ("dense", "fog"): 0.89, ("dense", "contrast"): 0.5,
              ("lrr-a", "clean"): 0.85, ("lrr-a", "fog"): 0.7, ("lrr-a", "contrast"): 0.4}
    settings = [(layout.CLEAN, 0), ("fog", 1), ("fog", 3), ("contrast", 1), ("contrast", 3)]
    root = write_study(tmp_path, models=MODELS[:2], settings=settings, num_samples=2000,
                       accuracy=lambda m, c: levels[(m, c)])
    catalog = Catalog(root)
    errors = matrices.corruption_errors(catalog).filter(pl.col("model_id") == "lrr-a").sort("corruption")
    contrast, fog = errors.rows(named=True)
    assert fog["reference_rise"] < matrices.MIN_REFERENCE_RISE and fog["relative_ce"] is None
    assert "fog" in fog["relative_ce_note"] and "nearly 0" in fog["relative_ce_note"]
    error = {key: 1 - value for key, value in cell_means(direct_rows(root)).items()}
    rise = [error[(m, "contrast", s)] - error[(m, layout.CLEAN, 0)] for m in ("lrr-a", "dense") for s in (1, 3)]
    assert contrast["relative_ce_note"] is None and close(contrast["relative_ce"], sum(rise[:2]) / sum(rise[2:]))
    summary = matrices.model_summary(catalog).filter(pl.col("model_id") == "lrr-a").row(0, named=True)
    assert summary["relative_mce"] == pytest.approx(contrast["relative_ce"])
    assert summary["relative_mce_left_out"] == ["fog"]


# -- geometry -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("by_correct", [False, True])
def test_geometry_summary_matches_numpy(catalog, direct, by_correct) -> None:
    model_id, corruption, severity = NON_FINITE[:3]
    summary = matrices.geometry_summary(catalog, by_correct=by_correct, model_id=model_id, corruption=corruption,
                                         severity=severity)
    rows = direct.filter((pl.col("model_id") == model_id) & (pl.col("corruption") == corruption)
                         & (pl.col("severity") == severity) & pl.col("finite"))
    groups = ["label", "correct"] if by_correct else ["label"]
    expected = rows.partition_by(groups, as_dict=True)
    assert summary.height == len(expected)
    for row in summary.iter_rows(named=True):
        key = tuple(row[g] for g in groups)
        group = expected[key]
        assert row["samples"] == group.height
        assert row["label_name"] == f"c{row['label']}"
        for metric in matrices.GEOMETRY:
            values = group[metric].to_numpy().astype(np.float64)
            assert close(row[f"{metric}_mean"], values.mean())
            assert close(row[f"{metric}_std"], values.std(ddof=1) if len(values) > 1 else None)
            for q in (10, 50, 90):
                assert close(row[f"{metric}_p{q}"], float(np.quantile(values, q / 100)))


# -- agreement and redundancy -------------------------------------------------------------------------

def direct_pairs(direct: pl.DataFrame, item: str, within: list[str]) -> dict[tuple[str, str], dict]:
    """Pair statistics from an explicit join of the two items' predictions (sklearn for kappa)."""
    out = {}
    items = sorted(direct[item].unique().to_list())
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            joined = direct.filter(pl.col(item) == a).join(direct.filter(pl.col(item) == b), on=[*within, "sample_id"])
            right_a, right_b = joined["correct"].to_numpy(), joined["correct_right"].to_numpy()
            finite = (joined["finite"] & joined["finite_right"]).to_numpy()
            angles = np.corrcoef(joined["angle_true"].to_numpy()[finite], joined["angle_true_right"].to_numpy()[finite])
            out[(a, b)] = {
                "samples": joined.height, "both_right": np.mean(right_a & right_b),
                "both_wrong": np.mean(~right_a & ~right_b), "agreement": np.mean(right_a == right_b),
                "kappa": cohen_kappa_score(right_a, right_b),
                "correctness_correlation": np.corrcoef(right_a, right_b)[0, 1], "angle_true_correlation": angles[0, 1],
            }
    return out


def assert_pairs_match(frame: pl.DataFrame, expected: dict[tuple[str, str], dict]) -> None:
    assert frame.height == len(expected)
    for row in frame.iter_rows():
        named = dict(zip(frame.columns, row, strict=True))
        want = expected[(row[0], row[1])]
        for column, value in want.items():
            assert close(named[column], float(value)), (row[0], row[1], column)


@pytest.mark.parametrize("setting", [(None, None), ("fog", 3)])
def test_model_agreement_matches_an_explicit_join(catalog, direct, setting) -> None:
    corruption, severity = setting
    rows = direct if corruption is None else direct.filter((pl.col("corruption") == corruption)
                                                          & (pl.col("severity") == severity))
    frame = agreement.model_agreement(catalog, corruption, severity)
    assert frame.columns[:2] == ["model_a", "model_b"]
    assert_pairs_match(frame, direct_pairs(rows, "model_id", ["corruption", "severity"]))
    twins = frame.filter((pl.col("model_a") == "ft") & (pl.col("model_b") == "twin")).row(0, named=True)
    assert twins["agreement"] == 1.0 and close(twins["kappa"], 1.0) and close(twins["angle_true_correlation"], 1.0)


def test_corruption_redundancy_matches_direct_computation(catalog, direct) -> None:
    frame = agreement.corruption_redundancy(catalog)
    corrupted = direct.filter(pl.col("corruption") != layout.CLEAN)
    assert_pairs_match(frame.drop("drop_correlation", "models"),
                       direct_pairs(corrupted, "corruption", ["model_id", "severity"]))
    accuracy = cell_means(direct)
    drop = {(m, c): np.mean([accuracy[(m, layout.CLEAN, 0)] - accuracy[(m, c, s)] for s in SEVERITIES])
            for m, *_ in MODELS for c in CORRUPTIONS}
    for row in frame.iter_rows(named=True):
        a = [drop[(m, row["corruption_a"])] for m, *_ in MODELS]
        b = [drop[(m, row["corruption_b"])] for m, *_ in MODELS]
        assert close(row["drop_correlation"], np.corrcoef(a, b)[0, 1])
        assert row["models"] == len(MODELS)
    at_one = agreement.corruption_redundancy(catalog, severity=1)
    assert (at_one["samples"] == len(MODELS) * NUM_SAMPLES).all()


@pytest.mark.parametrize("severity", [None, 1])
def test_corruption_drop_correlation_matches_direct_computation(catalog, direct, severity) -> None:
    frame = agreement.corruption_drop_correlation(catalog, severity)
    accuracy = cell_means(direct)
    levels = SEVERITIES if severity is None else (severity,)
    drop = {(m, c): np.mean([accuracy[(m, layout.CLEAN, 0)] - accuracy[(m, c, s)] for s in levels])
            for m, *_ in MODELS for c in CORRUPTIONS}
    assert frame.height == len(CORRUPTIONS) * (len(CORRUPTIONS) - 1) // 2
    for row in frame.iter_rows(named=True):
        a = [drop[(m, row["corruption_a"])] for m, *_ in MODELS]
        b = [drop[(m, row["corruption_b"])] for m, *_ in MODELS]
        assert close(row["drop_correlation"], np.corrcoef(a, b)[0, 1])
        assert row["models"] == len(MODELS)


def test_constant_correctness_gives_null_kappa_and_correlation(tmp_path) -> None:
    root = write_study(tmp_path, models=MODELS[:2], settings=[(layout.CLEAN, 0)], accuracy=lambda m, c: 1.0)
    row = agreement.model_agreement(Catalog(root)).row(0, named=True)
    assert row["agreement"] == 1.0 and row["both_right"] == 1.0
    assert row["kappa"] is None and row["correctness_correlation"] is None


def test_square_matrix_is_symmetric_and_orders_near_duplicates_together() -> None:
    similarity = {("a", "b"): 0.1, ("a", "c"): 0.95, ("a", "d"): 0.0, ("b", "c"): 0.05, ("b", "d"): 0.9,
                  ("c", "d"): None}
    pairs = pl.DataFrame({"x_a": [a for a, _ in similarity], "x_b": [b for _, b in similarity],
                          "kappa": list(similarity.values())})
    matrix, order = agreement.square_matrix(pairs, "kappa")
    assert matrix["item"].to_list() == order == matrix.columns[1:]
    assert abs(order.index("a") - order.index("c")) == 1 and abs(order.index("b") - order.index("d")) == 1
    values = matrix.drop("item").to_numpy()
    np.testing.assert_array_equal(np.diag(values), 1.0)
    np.testing.assert_array_equal(np.nan_to_num(values, nan=-9), np.nan_to_num(values.T, nan=-9))
    assert matrix[order.index("c"), "d"] is None


# -- vectors ------------------------------------------------------------------------------------------

def test_model_vectors_are_z_scored_concatenations_over_shared_samples(catalog, direct) -> None:
    chosen = [(layout.CLEAN, 0), ("fog", 3)]
    frame = embeddings.model_vectors(catalog, corruptions=[layout.CLEAN, "fog"], severities=[3])
    rows = direct.filter(pl.any_horizontal([(pl.col("corruption") == c) & (pl.col("severity") == s)
                                            for c, s in chosen]))
    finite = rows.filter(pl.col("finite"))
    stats = {m: (finite[m].cast(pl.Float64).mean(), finite[m].cast(pl.Float64).std(ddof=0)) for m in matrices.GEOMETRY}
    assert frame["model_id"].to_list()[0] == "dense" and frame.height == len(MODELS)
    assert (frame["samples"] == len(chosen) * NUM_SAMPLES).all()
    for row in frame.iter_rows(named=True):
        ordered = rows.filter(pl.col("model_id") == row["model_id"]).sort("corruption", "severity", "sample_id")
        parts = []
        for metric in matrices.GEOMETRY:
            mean, std = stats[metric]
            z = (ordered[metric].cast(pl.Float64).to_numpy() - mean) / std
            parts.append(np.where(ordered["finite"].to_numpy(), z, 0.0))
        np.testing.assert_allclose(np.asarray(row["vector"]), np.concatenate(parts), rtol=1e-5, atol=1e-5)


def test_sample_vectors_hold_finite_rows_of_the_chosen_models(catalog, direct) -> None:
    model_id, corruption, severity = NON_FINITE[:3]
    frame = embeddings.sample_vectors(catalog, [model_id, "dense"], corruption, severity)
    assert frame.height == 2 * NUM_SAMPLES - len(NON_FINITE[3])
    assert set(frame.filter(pl.col("model_id") == model_id)["sample_id"]).isdisjoint(NON_FINITE[3])
    assert frame["angles"].list.len().unique().to_list() == [NUM_CLASSES]
    with pytest.raises(ValueError, match="unknown model id"):
        embeddings.sample_vectors(catalog, ["nope"])


def test_embeddings_read_back_empty_before_they_are_computed(catalog) -> None:
    for frame, arrow_schema in ((embeddings.model_embedding(catalog), layout.MODEL_EMBEDDING_SCHEMA),
                                (embeddings.model_tree(catalog), layout.MODEL_TREE_SCHEMA),
                                (embeddings.sample_embedding(catalog), layout.SAMPLE_EMBEDDING_SCHEMA)):
        assert frame.is_empty() and frame.columns == arrow_schema.names


# -- presets ------------------------------------------------------------------------------------------

def setting_rows(direct: pl.DataFrame, corruption: str, severity: int) -> pl.DataFrame:
    return direct.filter((pl.col("corruption") == corruption) & (pl.col("severity") == severity))


def test_pruning_fragile_counts_pruned_models_wrong_where_the_reference_is_right(catalog, direct) -> None:
    rows = setting_rows(direct, "fog", 3)
    dense = rows.filter((pl.col("model_id") == "dense") & pl.col("correct")).select("sample_id")
    pruned = rows.filter(pl.col("method") != "dense").join(dense, on="sample_id")
    wrong = pruned.group_by("sample_id").agg((~pl.col("correct")).sum().alias("wrong"), pl.len().alias("n"))
    for k in (1, 2):
        expected = wrong.filter(pl.col("wrong") >= k)
        frame = presets.pruning_fragile(catalog, k, "fog", 3)
        assert not expected.is_empty()
        assert sorted(frame["sample_id"].to_list()) == sorted(expected["sample_id"].to_list())
        counts = dict(expected.select("sample_id", "wrong").iter_rows())
        assert all(counts[s] == w for s, w in frame.select("sample_id", "pruned_wrong").iter_rows())
        assert (frame["pruned_models"] == len(MODELS) - 1).all()
        assert frame["pruned_wrong"].is_sorted(descending=True)
    assert frame.columns[:3] == ["sample_id", "label", "label_name"]


@pytest.mark.parametrize("model_id", [None, "lrr-b"])
def test_corruption_fragile_is_right_on_clean_and_wrong_up_to_the_severity(catalog, direct, model_id) -> None:
    judged = model_id or "dense"
    rows = direct.filter(pl.col("model_id") == judged)
    clean_right = setting_rows(rows, layout.CLEAN, 0).filter(pl.col("correct"))["sample_id"]
    for max_severity in (1, 3):
        broken = rows.filter((pl.col("corruption") == "contrast") & (pl.col("severity") <= max_severity)
                             & ~pl.col("correct"))
        expected = broken.filter(pl.col("sample_id").is_in(clean_right.implode()))
        first = dict(expected.group_by("sample_id").agg(pl.col("severity").min()).iter_rows())
        frame = presets.corruption_fragile(catalog, "contrast", max_severity, model_id=model_id)
        assert not expected.is_empty()
        assert dict(frame.select("sample_id", "first_wrong_severity").iter_rows()) == first


def test_robust_samples_are_right_for_every_model_and_setting_up_to_the_severity(catalog, direct) -> None:
    rows = direct.filter(pl.col("severity") <= 1)
    expected = rows.group_by("sample_id").agg(pl.col("correct").all()).filter(pl.col("correct"))["sample_id"]
    frame = presets.robust(catalog, max_severity=1)
    assert not frame.is_empty()
    assert sorted(frame["sample_id"].to_list()) == sorted(expected.to_list())
    assert (frame["predictions"] == len(MODELS) * (1 + len(CORRUPTIONS))).all()
    assert presets.robust(catalog, max_severity=3).height <= frame.height


def test_flipped_by_pruning_lists_right_for_a_and_wrong_for_b(catalog, direct) -> None:
    rows = setting_rows(direct, layout.CLEAN, 0)
    a = rows.filter((pl.col("model_id") == "dense") & pl.col("correct"))["sample_id"]
    b = rows.filter((pl.col("model_id") == "lrr-a") & ~pl.col("correct"))["sample_id"]
    frame = presets.flipped_by_pruning(catalog, "dense", "lrr-a")
    assert sorted(frame["sample_id"].to_list()) == sorted(set(a) & set(b))
    assert not frame.is_empty() and (frame["pred_b"] != frame["label"]).all()
    with pytest.raises(ValueError, match="unknown model id"):
        presets.flipped_by_pruning(catalog, "dense", "missing")


def test_presets_are_listed_with_a_description(catalog) -> None:
    assert set(presets.PRESETS) == {"pruning_fragile", "corruption_fragile", "robust", "flipped_by_pruning",
                                      "pruning_identified_exemplars"}
    for function, description in presets.PRESETS.values():
        assert callable(function) and description and function.__doc__
    function, _ = presets.PRESETS["robust"]
    assert function(catalog, 5).columns[:3] == ["sample_id", "label", "label_name"]


# -- free filter --------------------------------------------------------------------------------------

def test_filter_rows_returns_the_rows_a_direct_filter_selects(catalog, direct) -> None:
    text = "angle_true > 60 and not correct and corruption in ('fog', 'contrast') and severity >= 3"
    expected = direct.filter((pl.col("angle_true") > 60) & ~pl.col("correct") & pl.col("corruption").is_in(["fog", "contrast"])
                             & (pl.col("severity") >= 3))
    frame = presets.filter_rows(catalog, text, limit=10_000)
    assert frame.height == expected.height == presets.count_rows(catalog, text)
    assert set(frame.select(*KEYS, "sample_id").iter_rows()) == set(expected.select(*KEYS, "sample_id").iter_rows())
    assert list(layout.FILTER_COLUMNS) == frame.columns
    assert presets.filter_rows(catalog, text, limit=5).height == 5


def test_a_count_of_every_match_stops_after_its_own_limit(catalog, monkeypatch) -> None:
    """Counting a whole study's matches may take longer than its first page: it stops after COUNT_SECONDS
    (the page then says "at least N"), the rows after FILTER_SECONDS."""
    asked = []
    real = type(catalog).query
    monkeypatch.setattr(type(catalog), "query", lambda self, sql, params=(), **kw: asked.append(
        (kw["name"], kw.get("timeout"))) or real(self, sql, params, **kw))
    presets.count_rows(catalog, "angle_true > 60")
    assert asked == [("filtered", presets.COUNT_SECONDS)] and presets.COUNT_SECONDS <= 2.0
    asked.clear()
    presets.filter_rows(catalog, "angle_true > 60", limit=5)
    assert [name for name, _ in asked if name == "filtered"] and all(
        timeout <= presets.FILTER_SECONDS for name, timeout in asked if name == "filtered")


def test_filter_rows_can_compare_with_the_reference(catalog, direct) -> None:
    dense = direct.filter(pl.col("model_id") == "dense").select("corruption", "severity", "sample_id",
                                                                  pl.col("correct").alias("reference_correct"))
    expected = direct.join(dense, on=["corruption", "severity", "sample_id"]).filter(
        pl.col("reference_correct") & ~pl.col("correct"))
    assert presets.count_rows(catalog, "reference_correct and not correct") == expected.height


def test_filters_with_the_deprecated_dense_names_give_the_same_answers(catalog) -> None:
    """analysis.filters.DEPRECATED_COLUMNS: a saved filter with the old names still runs, with the same rows."""
    new = ("reference_correct and not correct and reference_margin > margin "
           "and reference_angle_true < angle_true and reference_feature_norm > 0")
    old = new.replace("reference_", "dense_")
    assert "dense_" in old and presets.count_rows(catalog, old) == presets.count_rows(catalog, new) > 0
    assert presets.filter_rows(catalog, old).equals(presets.filter_rows(catalog, new))


def test_filter_errors_are_filter_errors_with_a_readable_message(catalog) -> None:
    with pytest.raises(FilterError, match="(?i)could not run.*(convert|compare|cast)"):
        presets.filter_rows(catalog, "method > 3")
    with pytest.raises(FilterError, match="unknown column"):
        presets.count_rows(catalog, "angel_true > 3")
    with pytest.raises(FilterError):
        presets.filter_rows(catalog, "1; DROP VIEW rows")


# -- an empty store -----------------------------------------------------------------------------------

def test_an_empty_store_gives_empty_frames(tmp_path) -> None:
    # Written by hand, not synthetic_store: a store without a single model or partition.
    writer.init_store(tmp_path, dataset="t", class_names=["a", "b"], images=np.zeros((3, 32, 32, 3), np.uint8),
                      labels=np.array([0, 1, 0]), corruptions=[], severities=[1])
    catalog = Catalog(tmp_path)
    for frame in (matrices.accuracy_matrix(catalog), matrices.accuracy_matrix(catalog, "method"),
                  matrices.model_summary(catalog), matrices.corruption_errors(catalog),
                  agreement.model_agreement(catalog), agreement.corruption_redundancy(catalog),
                  presets.robust(catalog), embeddings.model_vectors(catalog), presets.filter_rows(catalog, "correct")):
        assert frame.is_empty()
    with pytest.raises(ValueError, match="no reference model"):
        presets.corruption_fragile(catalog, "fog")
