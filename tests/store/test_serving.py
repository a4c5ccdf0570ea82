"""The serving copy (store.serving, index/serving.duckdb): every view and named query answers the same from it
as from the Parquet files, on a store with replicate seeds, one with 1,000 classes and one built by
extraction shards; a stale copy (a partition written again, a base changed) or a damaged one is never read;
an interrupted build resumes after its last complete setting."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from analysis import agreement, matrices, presets, queries
from store import derived, derived_record, layout, reader, serving
from store.catalog import Catalog
from testkit import synthetic

SIZES = {  # small, with what the copy must carry: seeds (bases per seed), classes kept as top-k
    "seeds": {"num_models": 6, "num_samples": 45, "corruptions": ("fog", "snow"), "severities": (1, 3), "seeds": 2},
    "1000 classes": {"num_models": 3, "num_samples": 29, "corruptions": ("fog",), "severities": (2,),
                     "num_classes": 1000},
}
ORDER = "ORDER BY model_id, corruption, severity, sample_id"


@pytest.fixture(params=["seeds", "1000 classes", "shards"])
def store(request, synthetic_store, pristine_copy) -> Path:
    if request.param == "shards":  # the session's two extraction shards (the last one built every derived file)
        return pristine_copy(request.getfixturevalue("two_shards").store)
    return pristine_copy(synthetic_store(**SIZES[request.param]))


def answers(store: Path, reference: str | None = None) -> tuple[bool, dict[str, pl.DataFrame]]:
    """Whether the catalog read the serving copy, and what every prediction view and a few named queries say."""
    catalog = Catalog(store, reference=reference)
    try:
        first = f"SELECT model_id FROM predictions {ORDER} LIMIT 1"  # noqa: S608 (constant SQL)
        model, setting = catalog.query(first, name="test")["model_id"][0], ("clean", 0)
        corruption, severity = catalog.query("SELECT corruption, severity FROM predictions WHERE corruption <> "
                                             "'clean' ORDER BY ALL LIMIT 1", name="test").row(0)
        found = {
            "rows": catalog.query(f"SELECT * FROM rows {ORDER}", name="test"),  # noqa: S608
            "class_values": catalog.query(f"SELECT *, {catalog.class_angles_sql(True)} AS every "  # noqa: S608
                                          f"FROM class_values {ORDER}", name="test"),
            "partition_summary": catalog.query("SELECT * FROM partition_summary ORDER BY ALL", name="test"),
            "accuracy": matrices.accuracy_matrix(catalog),
            "agreement": agreement.model_agreement(catalog, corruption, severity),
            "fragile": presets.pruning_fragile(catalog, 1, *setting),
            "filter": presets.filter_rows(catalog, "reference_correct and not correct", limit=10_000),
            "count": pl.DataFrame({"n": [presets.count_rows(catalog, "margin < reference_margin")]}),
            "points": queries.setting_points(catalog, model, corruption, severity),
            "classes": queries.class_values(catalog, model, corruption, severity),
        }
        return catalog.has_serving, found
    finally:
        catalog.close()


def same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    for name in a:
        left, right = a[name], b[name]
        if "sample_id" in left.columns and name in ("filter", "fragile"):
            left, right = left.sort(left.columns), right.sort(right.columns)
        assert left.equals(right), f"{name} differs"


def hidden(store: Path) -> Path:
    """Move the serving copy away (the catalog then reads the Parquet files); returns where it went."""
    away = store.parent / "serving.away"
    (store / layout.INDEX / layout.SERVING).rename(away)
    return away


def test_the_serving_copy_answers_every_query_as_the_parquet_files_do(store) -> None:
    assert derived.build_serving(store, progress=False) == store / layout.INDEX / layout.SERVING
    used, served = answers(store)
    assert used
    assert served["rows"].height == sum(pq.read_metadata(p).num_rows for p in reader.prediction_files(store))
    away = hidden(store)
    fallback, parquet = answers(store)
    assert not fallback
    same(served, parquet)
    away.rename(store / layout.INDEX / layout.SERVING)
    chosen = parquet["rows"]["model_id"][-1]  # a chosen reference: the rows join it, the copy's columns stay unused
    assert answers(store, chosen)[0]
    same(answers(store, chosen)[1], (hidden(store), answers(store, chosen))[1][1])


def test_the_copy_is_sorted_by_setting_model_and_sample_with_the_reference_beside(synthetic_store, pristine_copy) -> None:
    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    derived.build_serving(store, progress=False)
    catalog = Catalog(store)
    try:
        table = catalog.query(f"SELECT * FROM {serving.ALIAS}.{serving.TABLE}", name="test")  # noqa: S608
        keys = table.select("corruption", "severity", "model_id", "sample_id")
        assert keys.equals(keys.sort(keys.columns))
        assert table.columns[-4:] == list(serving.REFERENCE_COLUMNS)
        joined = catalog.query("""SELECT p.model_id, p.corruption, p.severity, p.sample_id, d.correct
                                  FROM predictions p JOIN models m USING (model_id)
                                  LEFT JOIN predictions d ON d.model_id = m.reference_model_id
                                  AND d.corruption = p.corruption AND d.severity = p.severity
                                  AND d.sample_id = p.sample_id
                                  ORDER BY p.model_id, p.corruption, p.severity, p.sample_id""", name="test")
        assert joined["correct"].null_count() < joined.height  # the pruned models have a base
        assert table.sort("model_id", "corruption", "severity", "sample_id")["reference_correct"].equals(
            joined["correct"].alias("reference_correct"))
    finally:
        catalog.close()


def test_a_stale_copy_is_never_read_and_compute_index_rebuilds_it(synthetic_store, pristine_copy) -> None:
    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    derived.build_serving(store, progress=False)
    synthetic.rewrite_partition(store, "fog", 1)  # same id, same file names, other rows
    catalog = Catalog(store)
    try:
        assert not catalog.has_serving and "compute index" in catalog.serving_hint
    finally:
        catalog.close()
    stale, parquet = answers(store)
    assert not stale
    derived.build_serving(store, progress=False)
    fresh, served = answers(store)
    assert fresh
    same(served, parquet)


def test_a_store_opens_its_fresh_copy_without_listing_a_prediction_file_even_copied(synthetic_store, pristine_copy,
                                                                                       tmp_path, monkeypatch) -> None:
    """The copy's record names the store's generation (store.derived_record): opening reads records, never the
    10,080 folders of a study; a copy of the store (new modification times) keeps its derived files."""
    import shutil

    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    derived.build_all(store)
    _, parquet = answers(store)
    moved = Path(shutil.copytree(store, tmp_path / "elsewhere", copy_function=shutil.copy))  # new mtimes
    monkeypatch.setattr(reader, "prediction_files", lambda root: pytest.fail(f"listed {root}"))
    used, served = answers(moved)
    assert used
    same(served, parquet)


def test_files_changed_by_hand_are_caught_by_compute_index(synthetic_store, pristine_copy) -> None:
    """A partition replaced without the writer keeps the store's generation, so the pages trust the records
    until `compute index`, which lists the files, gives the store a new generation and rebuilds."""
    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    derived.build_all(store)
    before = derived_record.generation(store)
    part = reader.prediction_files(store)[-1]
    table = pq.read_table(part)
    pq.write_table(table.slice(0, table.num_rows - 1), part)  # by hand: one row fewer, no marker, no new generation
    assert derived_record.generation(store) == before
    derived.build_all(store)
    assert derived_record.generation(store) != before
    used, served = answers(store)
    assert used and served["rows"].height == sum(pq.read_metadata(p).num_rows for p in reader.prediction_files(store))
    hidden(store)
    _, parquet = answers(store)
    same(served, parquet)


def test_a_changed_base_makes_the_copy_stale(synthetic_store, pristine_copy) -> None:
    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    derived.build_serving(store, progress=False)
    models = pl.read_parquet(store / layout.MODELS)
    pruned = models.filter(pl.col("base").is_not_null())["model_id"][0]
    models.with_columns(pl.when(pl.col("model_id") == pruned).then(None).otherwise(pl.col("base"))
                        .alias("base")).write_parquet(store / layout.MODELS)
    used, found = answers(store)
    assert not used  # its reference columns were the old base's
    assert found["rows"].filter(pl.col("model_id") == pruned)["reference_correct"].null_count() == \
        found["rows"].filter(pl.col("model_id") == pruned).height


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_copy_is_never_read(synthetic_store, pristine_copy, damage) -> None:
    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    derived.build_serving(store, progress=False)
    _, served = answers(store)
    path = store / layout.INDEX / layout.SERVING
    data = path.read_bytes()
    path.write_bytes(b"\x00not a database" * 1000 if damage == "garbage" else data[: len(data) // 3])
    used, found = answers(store)
    assert not used
    same(served, found)
    catalog = Catalog(store)
    try:
        assert catalog.serving_hint and not catalog.has_serving
    finally:
        catalog.close()


def test_settings_are_copied_in_steps_of_at_most_step_rows_a_larger_setting_alone() -> None:
    settings = [("clean", 0), ("fog", 1), ("fog", 3), ("snow", 1)]
    rows = {("clean", 0): 900, ("fog", 1): 900, ("fog", 3): 5_000, ("snow", 1): 100}
    original = serving.STEP_ROWS
    try:
        serving.STEP_ROWS = 2_000
        assert derived._steps(settings, rows) == [[("clean", 0), ("fog", 1)], [("fog", 3)], [("snow", 1)]]
        serving.STEP_ROWS = 10_000
        assert derived._steps(settings, rows) == [settings]
    finally:
        serving.STEP_ROWS = original


def test_an_interrupted_build_resumes_after_its_last_complete_setting(synthetic_store, pristine_copy,
                                                                      monkeypatch) -> None:
    store = pristine_copy(synthetic_store(**SIZES["seeds"]))
    monkeypatch.setattr(serving, "STEP_ROWS", 1)  # one setting per statement (a study's are a million rows)
    settings: list[tuple] = []
    real = Catalog.query

    def cut_off(self, sql, params=(), *, name, timeout=None):
        if name == "serving.settings":
            settings.append(tuple(params[0]))
            if len(settings) == 3:  # the third setting's rows are written, its completion is not
                real(self, sql, params, name=name, timeout=timeout)
                raise KeyboardInterrupt
        return real(self, sql, params, name=name, timeout=timeout)

    monkeypatch.setattr(Catalog, "query", cut_off)
    with pytest.raises(KeyboardInterrupt):
        derived.build_serving(store, progress=False)
    assert (store / layout.INDEX / layout.SERVING_PARTIAL).is_file()
    assert not (store / layout.INDEX / layout.SERVING).exists()
    assert not derived_record.record_path(store, layout.SERVING_RECORD).exists()
    derived.build_serving(store, progress=False)
    # 5 settings: the two complete ones are not written again, the cut-off one is written anew
    assert settings[3] == settings[2] and len(settings) == 6 and len(set(settings)) == 5
    assert all(len(step) == 1 for step in settings)
    assert not (store / layout.INDEX / layout.SERVING_PARTIAL).exists()
    monkeypatch.undo()
    used, served = answers(store)
    assert used
    hidden(store)
    same(served, answers(store)[1])
