"""Store writer and catalog: round trips, resumability, and named queries against direct computation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from analysis import matrices, presets, queries
from store import bases, derived, layout, reader, writer
from store.catalog import Catalog
from store.verify import validated_manifest
from testkit import synthetic
from testkit.direct import direct_rows
from testkit.synthetic import prediction_columns

CORRUPTIONS = ("gaussian_noise", "contrast")


@pytest.fixture
def small_store(synthetic_store) -> Path:
    """The session's store of this size: only read here."""
    return synthetic_store(num_models=3, num_samples=50, corruptions=CORRUPTIONS, severities=(1, 3))


# The writer tests write their stores by hand (writer.init_store, write_partition): they test the writer itself
# on known columns, empty stores and refused input. Tests that only need a normal store use synthetic_store.


def test_partition_round_trip_keeps_every_value(tmp_path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 20)
    columns = prediction_columns(rng, labels, 4, 0.7)
    writer.init_store(tmp_path, dataset="t", class_names=list("abcd"), images=np.zeros((20, 32, 32, 3), np.uint8),
                      labels=labels, corruptions=["contrast"], severities=[1])
    writer.upsert_classifiers(tmp_path, {"m1": (np.ones(4), np.zeros(4))})
    synthetic.write_partition(tmp_path, "m1", "contrast", 1, columns)
    table = pq.read_table(reader.partition_file(tmp_path, "m1", "contrast", 1))
    assert table.schema.equals(layout.prediction_schema(4))
    assert table.column("classes").to_pylist() == [[0, 1, 2, 3]] * 20  # 4 <= 20 classes: all kept, ascending
    np.testing.assert_allclose(np.stack(table.column("logits").to_numpy(zero_copy_only=False)), columns["logits"])
    np.testing.assert_array_equal(table.column("pred").to_numpy(), columns["pred"])
    row = direct_rows(tmp_path)
    np.testing.assert_array_equal(row["label"].to_numpy(), labels)
    np.testing.assert_array_equal(row["correct"].to_numpy(), columns["correct"])
    np.testing.assert_allclose(row["angle_true"].to_numpy(), columns["angle_true"], atol=1e-3)
    np.testing.assert_allclose(row["confidence"].to_numpy(), columns["confidence"], rtol=1e-5)
    assert reader.is_complete(tmp_path, "m1", "contrast", 1)
    assert not reader.is_complete(tmp_path, "m1", "contrast", 2)
    assert not list((tmp_path / "_tmp").iterdir()), "temporary files must not be left behind"


def test_partition_without_marker_or_with_wrong_row_count_is_incomplete(tmp_path) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 10)
    synthetic.write_partition(tmp_path, "m", "clean", 0, prediction_columns(rng, labels, 3, 0.5))
    marker = tmp_path / layout.COMPLETE / "m__clean__0.json"
    marker.write_text(json.dumps({"rows": 11, "bytes": 0}))
    assert not reader.is_complete(tmp_path, "m", "clean", 0)
    marker.unlink()
    assert not reader.is_complete(tmp_path, "m", "clean", 0)


def test_bad_model_ids_are_refused(tmp_path) -> None:
    rng = np.random.default_rng(2)
    table, summary = synthetic.partition(prediction_columns(rng, rng.integers(0, 3, 4), 3, 0.5))
    for bad in ("../escape", "a/b", "a__b", "", "x y"):
        with pytest.raises(layout.StoreError, match="model id"):
            writer.write_partition(tmp_path, bad, "clean", 0, table, summary)


def test_prediction_table_rejects_class_lists_of_another_shape() -> None:
    rng = np.random.default_rng(3)
    columns = prediction_columns(rng, rng.integers(0, 3, 5), 3, 0.5)
    with pytest.raises(layout.StoreError, match="classes"):
        writer.prediction_table(columns, np.zeros((5, 3)), columns["logits"][:4])


def test_accuracy_matrix_equals_direct_computation(small_store) -> None:
    catalog = Catalog(small_store)
    matrix = matrices.accuracy_matrix(catalog)
    expected = (direct_rows(small_store).group_by("model_id", "corruption", "severity")
                .agg(pl.col("correct").cast(pl.Float64).mean().alias("expected"), pl.len().alias("n")))
    joined = matrix.join(expected, on=["model_id", "corruption", "severity"], how="full", coalesce=True)
    assert joined.height == 3 * (1 + len(CORRUPTIONS) * 2)
    np.testing.assert_allclose(joined["accuracy"].to_numpy(), joined["expected"].to_numpy())
    assert (joined["samples"] == joined["n"]).all()
    assert matrix["method"][0] == "dense"


def test_sample_rows_cover_every_model_and_setting(small_store) -> None:
    catalog = Catalog(small_store)
    rows = queries.sample_rows(catalog, 7)
    direct = direct_rows(small_store).filter(pl.col("sample_id") == 7)
    assert rows.height == direct.height == 3 * 5
    merged = rows.join(direct.select("model_id", "corruption", "severity", "angle_true"),
                       on=["model_id", "corruption", "severity"])
    np.testing.assert_allclose(merged["angle_true"].to_numpy(), merged["angle_true_right"].to_numpy())


def test_models_query_lists_dense_first_and_pairs_each_model_with_its_base(small_store) -> None:
    frame = queries.models(Catalog(small_store))
    assert frame["method"][0] == "dense"
    # testkit.synthetic records model 0 as every other model's base; model 0 has none.
    assert frame["reference_model_id"].to_list() == [None] + [frame["model_id"][0]] * (frame.height - 1)


def test_a_chosen_reference_replaces_every_base(small_store) -> None:
    ids = queries.models(Catalog(small_store))["model_id"].to_list()
    frame = queries.models(Catalog(small_store, reference=ids[1]))
    expected = [None if model_id == ids[1] else ids[1] for model_id in frame["model_id"].to_list()]
    assert frame["reference_model_id"].to_list() == expected
    with pytest.raises(layout.StoreError, match="reference model 'nope' is not in the store"):
        Catalog(small_store, reference="nope")


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_a_store_written_before_model_cards_is_refused_until_migrate_fills_its_bases(small_store, tmp_path) -> None:
    store = tmp_path / "old"
    shutil.copytree(small_store, store)
    # models.parquet as writers before the card columns wrote it (layout.MODEL_REQUIRED_SCHEMA).
    old = pq.read_table(store / layout.MODELS).select(layout.MODEL_REQUIRED_SCHEMA.names)
    pq.write_table(old, store / layout.MODELS)
    # one line naming the command, never a silent pairing without bases
    with pytest.raises(layout.StoreError, match=r"^[^\n]*2 model\(s\) in models.parquet were written before "
                       r"model cards.*`python -m compute migrate --store [^\n]*old`$"):
        Catalog(store)
    process = _migrate_cli(store)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "0 partitions rewritten, 2 model bases filled" in out
    frame = queries.models(Catalog(store))
    dense = frame.filter(pl.col("method") == "dense")["model_id"][0]
    assert frame.filter(pl.col("method") != "dense")["reference_model_id"].unique().to_list() == [dense]
    assert frame.filter(pl.col("method") != "dense")["base"].unique().to_list() == [dense]
    assert frame["loader"].null_count() == frame.height
    assert bases.fill(store) == 0  # filled once: a second run finds nothing to do
    # a model added by a writer with cards (a loader, no base) keeps no base; the old rows keep theirs
    added = {**old.to_pylist()[1], "model_id": "added", "loader": '{"kind": "module"}', "base": None}
    writer.upsert_models(store, [added])
    frame = queries.models(Catalog(store))
    references = dict(frame.select("model_id", "reference_model_id").iter_rows())
    assert references.pop("added") is None and references.pop(dense) is None
    assert set(references.values()) == {dense}


def test_the_legacy_base_rule_is_the_dense_model_of_the_arch_its_seed_first() -> None:
    """store.bases.legacy_base: the rule rows from before model cards were paired under (same arch; the
    same seed, then another seed, then none; then by id), for pruned rows without a loader or base only."""
    def row(model_id, method="ft", arch="a", seed=0, **card):
        return {"model_id": model_id, "method": method, "arch": arch, "seed": seed, "base": None, "loader": None,
                **card}

    dense = [row("d-none", "dense", seed=None), row("d-s2", "dense", seed=2), row("d-s1b", "dense", seed=1),
             row("d-s1a", "dense", seed=1), row("e-s0", "dense", arch="b", seed=0)]
    models = [*dense, row("p-s1", seed=1), row("p-s0", seed=0), row("p-none", seed=None), row("q", arch="c"),
              row("carded", loader='{"kind": "checkpoint"}'), row("based", base="d-s2")]
    assert bases.unfilled(models) == {"p-s1": "d-s1a", "p-s0": "d-s1a", "p-none": "d-none"}
    assert bases.legacy_base(row("p-s0", seed=0), dense[:3]) == "d-s1b"  # another seed before none
    assert bases.legacy_base(dense[1], models) is None  # a dense model has no base


def test_models_without_a_seed_form_no_replicate_group(small_store, tmp_path) -> None:
    store = tmp_path / "seedless"
    shutil.copytree(small_store, store)
    rows = pq.read_table(store / layout.MODELS).to_pylist()
    twins = [{**rows[0], "model_id": f"twin{i}", "seed": None} for i in range(2)]
    writer.upsert_models(store, [{**row, "clean_accuracy": 1.0} for row in twins])
    groups = Catalog(store).query("SELECT model_id, group_id FROM models WHERE model_id LIKE 'twin%' ORDER BY 1", name="test")
    assert groups["group_id"].to_list() == ["twin0", "twin1"]


def test_catalog_cannot_read_files_outside_the_store(small_store) -> None:
    catalog = Catalog(small_store)
    with pytest.raises(Exception, match="(?i)permission|disabled"):
        catalog.query("SELECT * FROM read_csv('/etc/passwd')", name="test")
    with pytest.raises(Exception, match="(?i)configuration"):
        catalog.query("SET enable_external_access = true", name="test")


def test_empty_store_gives_empty_frames(tmp_path) -> None:
    writer.init_store(tmp_path, dataset="t", class_names=["a", "b"], images=np.zeros((3, 32, 32, 3), np.uint8),
                      labels=np.array([0, 1, 0]), corruptions=[], severities=[1])
    catalog = Catalog(tmp_path)
    assert matrices.accuracy_matrix(catalog).is_empty()
    assert queries.models(catalog).is_empty()
    assert queries.samples(catalog).height == 3


def test_missing_store_and_other_schema_versions_are_named(tmp_path) -> None:
    with pytest.raises(layout.StoreError, match="manifest.json is missing"):
        Catalog(tmp_path / "nowhere")
    writer.init_store(tmp_path, dataset="t", class_names=["a", "b"], images=np.zeros((2, 32, 32, 3), np.uint8),
                      labels=np.array([0, 1]), corruptions=[], severities=[1])
    manifest = json.loads((tmp_path / layout.MANIFEST).read_text())
    manifest["schema_version"] = 99
    (tmp_path / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(layout.StoreError, match="schema version 99"):
        Catalog(tmp_path)


def test_reopening_a_store_with_another_dataset_is_refused(tmp_path) -> None:
    writer.init_store(tmp_path, dataset="a", class_names=["x", "y"], images=np.zeros((2, 32, 32, 3), np.uint8),
                      labels=np.array([0, 1]), corruptions=[], severities=[1])
    with pytest.raises(layout.StoreError, match="refusing to mix"):
        writer.init_store(tmp_path, dataset="b", class_names=["x", "y"], images=np.zeros((2, 32, 32, 3), np.uint8),
                          labels=np.array([0, 1]), corruptions=[], severities=[1])


def test_upsert_models_replaces_by_id_and_keeps_others(tmp_path) -> None:
    base = {"arch": "a", "method": "dense", "target_sparsity": 0.0, "sparsity": 0.0, "seed": 0, "num_params": 1,
            "num_nonzero": 1, "checkpoint": None, "hparams": "{}", "clean_accuracy": 0.5}
    writer.upsert_models(tmp_path, [{**base, "model_id": "a"}, {**base, "model_id": "b"}])
    writer.upsert_models(tmp_path, [{**base, "model_id": "b", "clean_accuracy": 0.9}])
    table = pq.read_table(tmp_path / layout.MODELS).to_pylist()
    assert {row["model_id"]: row["clean_accuracy"] for row in table} == {"a": 0.5, "b": 0.9}


def test_partition_summary_from_markers_equals_a_scan_of_the_files(small_store) -> None:
    """The markers' sums serve the evaluation matrix; they must agree with the rows themselves."""
    summary = Catalog(small_store).query("SELECT * FROM partition_summary", name="test").sort("model_id", "corruption", "severity")
    rows = direct_rows(small_store)
    finite = rows.filter(pl.col("finite"))
    expected = (rows.group_by("model_id", "corruption", "severity")
                .agg(pl.len().alias("rows"), pl.col("correct").sum().alias("correct"))
                .join(finite.group_by("model_id", "corruption", "severity")
                      .agg(pl.len().alias("finite"), pl.col("angle_true").cast(pl.Float64).sum().alias("angle_true_sum"),
                           pl.col("margin").cast(pl.Float64).sum().alias("margin_sum")),
                      on=["model_id", "corruption", "severity"])
                .sort("model_id", "corruption", "severity"))
    for column in ("rows", "correct", "finite"):
        assert summary[column].to_list() == expected[column].to_list()
    # Markers sum extraction's own angles; format 2 derives them again from float32 logits (close, not equal).
    for column in ("angle_true_sum", "margin_sum"):
        np.testing.assert_allclose(summary[column].to_numpy(), expected[column].to_numpy(), rtol=1e-6)


def test_a_file_without_its_marker_makes_the_summary_scan_the_files(synthetic_store, pristine_copy) -> None:
    root = pristine_copy(synthetic_store(num_models=2, num_samples=30, corruptions=("contrast",), severities=(1,)))
    from_markers = matrices.accuracy_matrix(Catalog(root))
    marker = sorted((root / layout.COMPLETE).glob("*.json"))[0]
    marker.unlink()
    scanned = matrices.accuracy_matrix(Catalog(root))
    assert scanned.height == from_markers.height
    np.testing.assert_allclose(scanned["accuracy"].to_numpy(), from_markers["accuracy"].to_numpy())


def test_markers_from_an_older_writer_get_their_sums_added(synthetic_store, pristine_copy) -> None:
    root = pristine_copy(synthetic_store(num_models=2, num_samples=30, corruptions=("contrast",), severities=(1,)))
    expected = matrices.accuracy_matrix(Catalog(root))
    for marker in (root / layout.COMPLETE).glob("*.json"):
        old = json.loads(marker.read_text())
        marker.write_text(json.dumps({"rows": old["rows"], "bytes": old["bytes"]}))
    dense = expected["model_id"][0]
    assert reader.clean_accuracy(root, dense) is None  # no correct count yet: unknown, not read from the file
    assert derived.summarize_markers(root) == 4
    assert derived.summarize_markers(root) == 0
    assert all("sums" in m for m in reader.complete_partitions(root))
    clean = expected.filter((pl.col("model_id") == dense) & (pl.col("corruption") == "clean"))["accuracy"][0]
    assert reader.clean_accuracy(root, dense) == pytest.approx(clean)
    np.testing.assert_allclose(matrices.accuracy_matrix(Catalog(root))["accuracy"].to_numpy(),
                               expected["accuracy"].to_numpy())


def test_sample_index_answers_like_the_partitions_and_goes_stale_with_them(synthetic_store, pristine_copy) -> None:
    from store import derived, sample_index

    root = pristine_copy(synthetic_store(num_models=2, num_samples=30, corruptions=("contrast",), severities=(1, 2)))
    scanned = queries.sample_rows(Catalog(root), 4)
    robust_scanned = presets.robust(Catalog(root), 2)
    assert not Catalog(root).has_sample_index
    assert derived.build_sample_index(root) is not None
    catalog = Catalog(root)
    assert catalog.has_sample_index
    indexed = queries.sample_rows(catalog, 4)
    assert indexed.equals(scanned)
    assert presets.robust(catalog, 2).equals(robust_scanned)
    assert robust_scanned.height > 0
    assert indexed.height == 2 * 3
    # a new partition makes the index stale: the catalog falls back to the partitions until it is rebuilt
    rng = np.random.default_rng(9)
    labels = pq.read_table(root / layout.SAMPLES)["label"].to_numpy()
    synthetic.write_partition(root, "m00-dense-0", "contrast", 3, prediction_columns(rng, labels, 10, 0.5))
    assert not sample_index.is_fresh(root)
    assert queries.sample_rows(Catalog(root), 4).height == 7
    derived.build_sample_index(root)
    assert queries.sample_rows(Catalog(root), 4).height == 7


# -- format 1: still read, and migrated ----------------------------------------------------------------

def _migrate_cli(root) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "compute", "migrate", "--store", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _store_contents(root) -> dict[str, object]:
    """Everything a migration writes: manifest, classifiers, every partition's table and marker."""
    out: dict[str, object] = {"manifest": json.loads((root / layout.MANIFEST).read_text()),
                              "classifiers": reader.read_classifiers(root).to_pylist()}
    for path in reader.prediction_files(root):
        out[str(path.relative_to(root))] = pq.read_table(path).to_pylist()
    for marker in sorted((root / layout.COMPLETE).glob("*.json")):
        out[marker.name] = json.loads(marker.read_text())
    return out


def _format_1_rows(root) -> tuple[pl.DataFrame, list[dict]]:
    """Scalars and per-class angles of a format-1 store, read straight from its files (only `compute migrate`
    opens such a store): what the migration must keep."""
    frames = []
    for path in reader.prediction_files(root):
        keys = dict(part.split("=", 1) for part in path.parent.relative_to(root / layout.PREDICTIONS).parts)
        frame = pl.read_parquet(path)
        frames.append(frame.select(*layout.SCALAR_COLUMNS).with_columns(
            pl.lit(keys["model_id"]).alias("model_id"), pl.lit(keys["corruption"]).alias("corruption"),
            pl.lit(int(keys["severity"]), pl.Int32).alias("severity")))
    before = pl.concat(frames).sort("model_id", "corruption", "severity", "sample_id")
    dense_clean = reader.partition_file(root, "m00-dense-0", "clean", 0)
    angles = pl.read_parquet(dense_clean).filter(pl.col("finite")).select("angles").to_series().to_list()
    return before, angles


def test_a_format_1_store_is_refused_everywhere_but_migrate(synthetic_store) -> None:
    root = synthetic_store(num_models=1, num_samples=10, corruptions=(), severities=(1,), version=1)
    for open_store in (Catalog, reader.read_manifest, validated_manifest):
        with pytest.raises(layout.StoreError, match=r"format-1 store.*python -m compute migrate --store"):
            open_store(root)


def test_a_format_1_store_migrates_to_the_same_scalars(synthetic_store, pristine_copy, cli) -> None:
    root = pristine_copy(synthetic_store(num_models=2, num_samples=40, corruptions=("contrast",), severities=(1,),
                                         num_classes=30, version=1))
    before, angles = _format_1_rows(root)
    assert all(len(row) == 30 for row in angles)
    with pytest.raises(layout.StoreError, match="migrate"):
        writer.init_store(root, dataset="synthetic", class_names=[f"class{c}" for c in range(30)],
                          images=np.zeros((40, 32, 32, 3), np.uint8), labels=before["label"][:40].to_numpy(),
                          corruptions=[], severities=[1])
    migrated = cli("migrate", "--store", root)
    assert migrated.returncode == 0, migrated.stderr
    assert "4 partitions rewritten, 1 model bases filled" in migrated.stdout  # format 1 predates model cards
    catalog = Catalog(root)
    assert queries.models(catalog)["reference_model_id"].to_list() == [None, "m00-dense-0"]
    assert not catalog.keeps_all_classes  # 30 classes > 20: top-10 + true class
    after = catalog.query("SELECT * FROM predictions ORDER BY model_id, corruption, severity, sample_id", name="test")
    assert sorted(after.columns) == sorted(before.columns)
    after = after.select(before.columns)
    for column in before.columns:
        if before[column].dtype.is_float():
            np.testing.assert_allclose(after[column].to_numpy(), before[column].to_numpy(), atol=1e-3, rtol=1e-5)
        else:
            assert after[column].equals(before[column]), column
    # per-class angles now follow from the fitted classifier: the same as format 1 stored, on the kept classes
    migrated = queries.class_values(catalog, "m00-dense-0", "clean", 0)
    assert migrated.height == len(angles)
    for old, new in zip(angles, migrated.iter_rows(named=True), strict=True):
        np.testing.assert_allclose(new["angles"], np.array(old)[new["classes"]], atol=1e-3)


@pytest.mark.slow  # kill/resume: migration processes killed and rerun
def test_a_killed_migration_resumed_gives_the_same_store(tmp_path, synthetic_store, cli) -> None:
    original = synthetic_store(num_models=3, num_samples=300, corruptions=("contrast", "fog"),
                               severities=(1, 2, 3, 4, 5), num_classes=12, version=1)
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    shutil.copytree(original, reference)
    shutil.copytree(original, interrupted)
    assert cli("migrate", "--store", reference).returncode == 0  # only the killed run needs its own process
    process = _migrate_cli(interrupted)
    deadline = time.monotonic() + 240
    while not any(reader.file_version(p) == 2 for p in reader.prediction_files(interrupted)):
        assert process.poll() is None and time.monotonic() < deadline, "migration ended before it could be killed"
        time.sleep(0.005)
    process.kill()
    process.wait()
    versions = [reader.file_version(p) for p in reader.prediction_files(interrupted)]
    assert 1 in versions and 2 in versions, "the kill must land half-way"
    with pytest.raises(layout.StoreError, match="interrupted"):
        Catalog(interrupted)
    assert cli("migrate", "--store", interrupted).returncode == 0
    assert _store_contents(interrupted) == _store_contents(reference)


def test_migrating_a_store_of_an_unknown_version_is_refused(synthetic_store, pristine_copy, cli) -> None:
    root = pristine_copy(synthetic_store(num_models=1, num_samples=10, corruptions=(), severities=(1,)))
    manifest = json.loads((root / layout.MANIFEST).read_text())
    (root / layout.MANIFEST).write_text(json.dumps({**manifest, "schema_version": 7}))
    refused = cli("migrate", "--store", root)
    assert refused.returncode == 2
    assert "error:" in refused.stderr and "schema version 7" in refused.stderr


@pytest.mark.slow  # extract as processes
def test_extract_command_line_records_and_applies_the_per_class_flags(tmp_path) -> None:
    """`extract --all-classes-up-to 5 --top-k 3` on 10 digit classes: rows keep 3 logits plus the true
    class, the manifest says so, and reopening the store with other flags is refused."""
    from testkit.extraction import save_small_cnn, start_extract

    checkpoint = save_small_cnn(tmp_path / "small0.pt", 0)
    store = tmp_path / "store"
    process = start_extract(store, [checkpoint], "--all-classes-up-to", "5", "--top-k", "3")
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    manifest = json.loads((store / layout.MANIFEST).read_text())
    assert manifest["schema_version"] == 2 and manifest["per_class"] == {"all_up_to": 5, "top_k": 3}
    values = queries.class_values(Catalog(store), "small0", "clean", 0)
    assert set(values["classes"].list.len().unique()) <= {3, 4} and values.height > 0
    assert all(label in classes for label, classes in zip(values["label"], values["classes"], strict=True))
    process = start_extract(store, [checkpoint], "--top-k", "4")
    _, err = process.communicate(timeout=600)
    assert process.returncode == 2 and "error:" in err and "top_k=3" in err
