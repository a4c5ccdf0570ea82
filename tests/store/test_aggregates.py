"""The pre-aggregates (store.aggregates) against a direct computation on the raw Parquet files, on a store with
replicate seeds, one with 1,000 classes and one built by extraction shards; and a store without them (older,
or partly written) answers the same, more slowly, and says how to build them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from analysis import matrices, presets, uncertainty
from store import aggregates, derived, layout, reader, writer
from store.catalog import Catalog, QueryTimeout
from testkit.extraction import KEYS, prediction_rows

SIZES = {  # small, but with what each aggregate must handle: seeds, classes kept as top-k, samples % 8 != 0
    "seeds": {"num_models": 6, "num_samples": 45, "corruptions": ("fog", "snow"), "severities": (1, 3), "seeds": 2},
    "1000 classes": {"num_models": 3, "num_samples": 29, "corruptions": ("fog",), "severities": (2,),
                     "num_classes": 1000},
}


def built(store: Path) -> Path:
    derived.build_all(store)
    assert aggregates.is_fresh(store)
    return store


@pytest.fixture(params=["seeds", "1000 classes", "shards"])
def store(request, synthetic_store, pristine_copy) -> Path:
    if request.param == "shards":  # the session's two extraction shards: the one completing the store builds all
        return request.getfixturevalue("two_shards").store
    return built(pristine_copy(synthetic_store(**SIZES[request.param])))


def raw(store: Path) -> dict[str, np.ndarray]:
    """Every prediction row straight from the Parquet files (pyarrow, no DuckDB): keys, correct, margin, angle."""
    table = prediction_rows(store)
    columns = {name: table.column(name).to_numpy(zero_copy_only=False)
               for name in ("model_id", "corruption", "severity", "sample_id", "label", "pred", "margin",
                            "angle_true", "feature_norm", "loss", "finite")}
    columns["correct"] = columns["pred"] == columns["label"]  # format 2 derives correct the same way
    return columns


def unpack(blob: bytes, num_samples: int) -> np.ndarray:
    """A DuckDB BIT cast to BLOB: whole bytes, first bit first, led by zero bits up to a byte boundary."""
    bits = np.unpackbits(np.frombuffer(blob, np.uint8))
    padding = len(bits) - num_samples
    assert 0 <= padding < 8 and not bits[:padding].any()
    return bits[padding:].astype(bool)


def test_partition_bits_hold_each_partition_s_samples_and_right_answers(store) -> None:
    rows = raw(store)
    num_samples = pq.read_metadata(store / layout.SAMPLES).num_rows
    table = pq.read_table(aggregates.path(store, "partition_bits")).to_pylist()
    partitions = set(zip(rows["model_id"], rows["corruption"], rows["severity"], strict=True))
    assert {(r["model_id"], r["corruption"], r["severity"]) for r in table} == partitions
    for record in table:
        mine = ((rows["model_id"] == record["model_id"]) & (rows["corruption"] == record["corruption"])
                & (rows["severity"] == record["severity"]))
        present, right = np.zeros(num_samples, bool), np.zeros(num_samples, bool)
        present[rows["sample_id"][mine]] = True
        right[rows["sample_id"][mine & rows["correct"]]] = True
        assert record["samples"] == mine.sum() and record["correct"] == (mine & rows["correct"]).sum()
        assert np.array_equal(unpack(record["present"], num_samples), present)
        assert np.array_equal(unpack(record["right_bits"], num_samples), right)


def test_sample_sums_are_each_sample_s_counts_and_extremes_per_severity(store) -> None:
    rows = raw(store)
    table = pq.read_table(aggregates.path(store, "sample_sums")).to_pylist()
    keys = set(zip(rows["sample_id"].tolist(), rows["severity"].tolist(), strict=True))
    assert {(r["sample_id"], r["severity"]) for r in table} == keys
    for record in table:
        mine = (rows["sample_id"] == record["sample_id"]) & (rows["severity"] == record["severity"])
        assert record["rows"] == mine.sum() and record["correct"] == (mine & rows["correct"]).sum()
        assert record["min_margin"] == rows["margin"][mine].min()  # float32 both: exact
        assert record["max_angle_true"] == rows["angle_true"][mine].max()


def test_class_sums_are_each_class_s_counts_and_metric_sums(store) -> None:
    rows = raw(store)
    table = pq.read_table(aggregates.path(store, "class_sums")).to_pylist()
    keys = set(zip(rows["model_id"], rows["corruption"], rows["severity"], rows["label"].tolist(), strict=True))
    assert {(r["model_id"], r["corruption"], r["severity"], r["label"]) for r in table} == keys
    for record in table:
        mine = ((rows["model_id"] == record["model_id"]) & (rows["corruption"] == record["corruption"])
                & (rows["severity"] == record["severity"]) & (rows["label"] == record["label"]))
        finite = mine & rows["finite"]
        assert (record["rows"], record["correct"], record["finite"]) == (
            mine.sum(), (mine & rows["correct"]).sum(), finite.sum())
        for metric in ("angle_true", "feature_norm", "margin", "loss"):  # stored; the others are derived
            expected = rows[metric][finite].astype(np.float64).sum()
            assert record[f"{metric}_sum"] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_the_matrix_sums_from_class_sums_equal_the_completion_markers(store) -> None:
    """partition_summary of a fresh store (class_sums over classes) against the writer's own marker sums."""
    catalog = Catalog(store)
    try:
        assert catalog.has_aggregates
        summary = {(r["model_id"], r["corruption"], r["severity"]): r
                   for r in catalog.query("SELECT * FROM partition_summary", name="test").iter_rows(named=True)}
    finally:
        catalog.close()
    markers = reader.complete_partitions(store)
    assert set(summary) == {(m["model_id"], m["corruption"], m["severity"]) for m in markers}
    for marker in markers:
        row = summary[(marker["model_id"], marker["corruption"], marker["severity"])]
        assert (row["rows"], row["correct"], row["finite"]) == (marker["rows"], marker["correct"], marker["finite"])
        for metric, value in marker["sums"].items():  # confidence and p_true: derived in DuckDB, float32 logits
            assert row[f"{metric}_sum"] == pytest.approx(value, rel=1e-5, abs=1e-6), metric


def test_robust_preset_matches_a_brute_force_over_the_rows(store, request) -> None:
    rows = raw(store)
    hits = 0
    for max_severity in sorted(set(rows["severity"].tolist())):
        chosen = rows["severity"] <= max_severity
        expected = sorted(s for s in set(rows["sample_id"][chosen].tolist())
                          if rows["correct"][chosen & (rows["sample_id"] == s)].all())
        catalog = Catalog(store)
        try:
            found = presets.robust(catalog, max_severity)
        finally:
            catalog.close()
        assert sorted(found["sample_id"].to_list()) == expected
        hits += len(expected)
        for sample_id, predictions, min_margin in found.select("sample_id", "predictions", "min_margin").iter_rows():
            mine = chosen & (rows["sample_id"] == sample_id)
            assert predictions == mine.sum() and min_margin == pytest.approx(rows["margin"][mine].min())
    # untrained shard checkpoints get ~10% right, so no sample is robust there; the synthetic stores have some
    assert hits or request.node.callspec.params["store"] == "shards"


def answers(store: Path) -> tuple:
    catalog = Catalog(store)
    try:
        return (catalog.has_aggregates, catalog.aggregates_hint, presets.robust(catalog, 5),
                uncertainty.paired_counts(catalog), matrices.accuracy_matrix(catalog))
    finally:
        catalog.close()


def test_paired_counts_match_a_brute_force_against_each_reference(synthetic_store, pristine_copy) -> None:
    store = built(pristine_copy(synthetic_store(**SIZES["seeds"])))
    rows = raw(store)
    counts = answers(store)[3]
    def right(model_id: str, corruption: str, severity: int) -> np.ndarray:
        mine = (rows["model_id"] == model_id) & (rows["corruption"] == corruption) & (rows["severity"] == severity)
        return rows["correct"][mine][np.argsort(rows["sample_id"][mine])]

    for record in counts.iter_rows(named=True):
        setting = record["corruption"], record["severity"]
        if record["reference_model_id"] is None:  # a dense model has no reference: nothing is paired
            assert record["paired"] == record["both_right"] == record["only_model"] == record["only_reference"] == 0
            continue
        model, dense = right(record["model_id"], *setting), right(record["reference_model_id"], *setting)
        assert record["both_right"] == (model & dense).sum()
        assert record["only_model"] == (model & ~dense).sum() and record["only_reference"] == (~model & dense).sum()
    # seeds pair with the dense model of their own seed (the catalog's reference_model_id)
    pruned = counts.filter(counts["model_id"].str.ends_with("-s1") & (counts["method"] != "dense"))
    assert set(pruned["reference_model_id"]) == {"m01-dense-0-s1"}


def test_a_store_without_pre_aggregates_answers_the_same_and_says_how_to_build_them(
        synthetic_store, pristine_copy) -> None:
    store = built(pristine_copy(synthetic_store(**SIZES["seeds"])))
    fresh, hint, robust, counts, matrix = answers(store)
    assert fresh and hint is None
    older = pristine_copy(store)
    shutil.rmtree(older / layout.INDEX)  # a store from before pre-aggregates (and the by-sample index)
    has, hint, robust_old, counts_old, matrix_old = answers(older)
    assert not has and f"python -m compute index --store {older}" in hint
    assert robust_old.equals(robust) and counts_old.equals(counts) and matrix_old.equals(matrix)


def test_a_partition_written_after_the_aggregates_makes_them_stale(synthetic_store, pristine_copy) -> None:
    store = built(pristine_copy(synthetic_store(**SIZES["seeds"])))
    table = pq.read_table(reader.partition_file(store, "m00-dense-0-s0", "fog", 1))
    marker = reader.read_json(reader.marker_path(store, "m00-dense-0-s0", "fog", 1))
    summary = {name: value for name, value in marker.items() if name not in ("rows", "bytes")}
    writer.write_partition(store, "m00-dense-0-s0", "fog", 2, table, summary)  # a partly extracted new setting
    assert not aggregates.is_fresh(store)
    has, hint, robust, counts, _ = answers(store)
    assert not has and "compute index" in hint
    assert counts.filter((counts["corruption"] == "fog") & (counts["severity"] == 2)).height == 1
    derived.build_aggregates(store)
    assert answers(store)[0] and answers(store)[2].equals(robust) and answers(store)[3].equals(counts)


def test_a_damaged_aggregate_file_is_stale_not_trusted(synthetic_store, pristine_copy) -> None:
    store = built(pristine_copy(synthetic_store(**SIZES["seeds"])))
    aggregates.path(store, "sample_sums").write_bytes(b"not parquet")
    assert not aggregates.is_fresh(store)
    assert not answers(store)[0]


def test_verify_names_a_damaged_pre_aggregate_and_how_to_rebuild_it(synthetic_store, pristine_copy) -> None:
    from store.verify import verify

    store = built(pristine_copy(synthetic_store(**SIZES["seeds"])))
    assert verify(store, views=("index",)) == []
    damaged = aggregates.path(store, "class_sums")
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a truncated copy
    (problem,) = verify(store, views=("index",))
    assert problem.path == damaged and "python -m compute index" in problem.message


def test_compute_index_builds_the_pre_aggregates(synthetic_store, pristine_copy, cli) -> None:
    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    assert not aggregates.is_fresh(store)
    ran = cli("index", "--store", str(store))
    assert ran.returncode == 0, ran.stderr
    assert "pre-aggregates: partition_bits.parquet, sample_sums.parquet, class_sums.parquet" in ran.stdout
    assert aggregates.is_fresh(store)


def test_the_paged_filter_gives_the_first_rows_of_the_whole_ordered_answer(synthetic_store) -> None:
    store = synthetic_store(**SIZES["seeds"])
    rows = pl.from_arrow(prediction_rows(store)).with_columns(correct=pl.col("pred") == pl.col("label"))
    text = "margin < -1 or angle_true > 80"  # an OR: the model scope must not bind to its second half
    expected = (rows.filter((pl.col("margin") < -1) | (pl.col("angle_true") > 80))
                .sort("model_id", pl.col("corruption") != "clean", "corruption", "severity", "sample_id"))
    catalog = Catalog(store)
    try:
        assert presets.count_rows(catalog, text) == expected.height
        for limit in (1, 5, expected.height - 3, expected.height + 10):  # one model's rows, several, all
            found = presets.filter_rows(catalog, text, limit)
            assert found.select(*KEYS).rows() == expected.head(limit).select(*KEYS).rows()
        with pytest.raises(QueryTimeout, match="stopped after"):  # cut off: says so, never a partial answer
            presets.filter_rows(catalog, text, expected.height, timeout=1e-9)
    finally:
        catalog.close()


def test_pruning_fragile_judges_each_seed_against_its_own_reference(synthetic_store) -> None:
    store = synthetic_store(**SIZES["seeds"])
    rows = pl.from_arrow(prediction_rows(store)).with_columns(correct=pl.col("pred") == pl.col("label"))
    models = pl.from_arrow(pq.read_table(store / layout.MODELS)).select("model_id", "method", "seed")
    setting = rows.filter((pl.col("corruption") == "fog") & (pl.col("severity") == 3)).join(models, on="model_id")
    dense = setting.filter(pl.col("method") == "dense").select("seed", "sample_id", reference_right=pl.col("correct"))
    judged = setting.filter(pl.col("method") != "dense").join(dense, on=["seed", "sample_id"]).filter("reference_right")
    expected = (judged.group_by("sample_id").agg(wrong=(~pl.col("correct")).sum(), models=pl.len())
                .filter(pl.col("wrong") >= 1))
    catalog = Catalog(store)
    try:
        found = presets.pruning_fragile(catalog, 1, "fog", 3)
    finally:
        catalog.close()
    assert expected.height > 0
    assert sorted(found.select("sample_id", "pruned_wrong", "pruned_models").rows()) == sorted(expected.rows())


def _rewritten(store: Path, name: str, change) -> None:
    """Rewrite pre-aggregate `name` with `change(table) -> table`, same rows: its record still calls it fresh."""
    target = aggregates.path(store, name)
    table = change(pq.read_table(target))
    stat = target.stat()
    pq.write_table(table, target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize(("name", "change", "named"), [
    ("partition_bits", lambda t: t.set_column(t.schema.get_field_index("right_bits"), "right_bits",
                                              pa.array([b[: len(b) // 2] for b in t.column("right_bits").to_pylist()],
                                                       pa.binary())), "right_bits is 24 bits long"),
    ("partition_bits", lambda t: t.set_column(t.schema.get_field_index("correct"), "correct",
                                              pc.add(t.column("correct"), 1)), "holds"),
    ("class_sums", lambda t: t.set_column(t.schema.get_field_index("rows"), "rows", pc.multiply(t.column("rows"), 2)),
     "class_sums.parquet"),
    ("sample_sums", lambda t: t.set_column(t.schema.get_field_index("correct"), "correct",
                                           pc.multiply(t.column("correct"), 0)), "sample_sums.parquet"),
], ids=["bits cut to half length", "a count changed", "class sums doubled", "sample sums zeroed"])
def test_a_pre_aggregate_that_lies_is_refused_named_by_verify_and_rebuilt(synthetic_store, pristine_copy, cli, name,
                                                                          change, named) -> None:
    """Files rewritten with their row counts (so their record still calls them fresh) that disagree with
    the store's samples, their own counts or each other are never served: the paired tests answer as on
    the intact store, verify names the file, `compute index` rebuilds it."""
    from store.verify import verify

    store = built(pristine_copy(synthetic_store(**SIZES["seeds"])))
    intact = answers(store)
    _rewritten(store, name, change)
    has, hint, robust, counts, matrix = answers(store)
    assert not has and named in hint and "compute index" in hint, hint
    assert counts.equals(intact[3]) and robust.equals(intact[2]) and matrix.equals(intact[4])
    (problem,) = verify(store, views=("index",))
    assert named in f"{problem.path.name} {problem.message}" and "python -m compute index" in problem.message
    assert cli("index", "--store", str(store)).returncode == 0
    assert aggregates.is_fresh(store) and verify(store, views=("index",)) == []


def test_a_partition_with_no_right_answer_is_not_called_damaged(tmp_path) -> None:
    """bitstring_agg over no set bit is null: a model wrong on every sample of a setting (an int8 copy that
    broke, a 90 % model under heavy noise) has a null right_bits with a count of 0, which is whole, not
    damaged (the check once refused every store holding such a partition)."""
    from testkit.study import write_study

    store = write_study(tmp_path / "store", models=[("dense", "dense", 0.0, 0), ("ft", "ft", 0.9, 0)],
                        accuracy=lambda model, corruption: 0.0 if model == "ft" and corruption == "fog" else 0.9)
    built(store)
    bits = pq.read_table(aggregates.path(store, "partition_bits")).to_pylist()
    assert any(row["right_bits"] is None and row["correct"] == 0 for row in bits)  # the case is there
    catalog = Catalog(store)
    try:
        assert catalog.has_aggregates, catalog.aggregates_hint
    finally:
        catalog.close()
