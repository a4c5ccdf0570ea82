"""One door per act on the store: every query through Catalog._run (named, logged, one error type), one
record and one freshness rule for every derived file, and a store opened once per catalog."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis import presets
from analysis.filters import FilterError
from store import aggregates, derived, derived_record, layout, reader, sample_index
from store.catalog import QUERY_LOG, Catalog, QueryError, QueryTimeout
from testkit import synthetic

SMALL = {"num_models": 3, "num_samples": 20, "corruptions": ("fog",), "severities": (1,)}


# -- the query runner ---------------------------------------------------------------------------------------

def test_a_failing_query_names_itself_and_carries_duckdbs_reason(synthetic_store) -> None:
    catalog = Catalog(synthetic_store(**SMALL))
    try:
        for run in (lambda: catalog.query("SELECT no_such_column FROM models", name="broken"),
                    lambda: catalog.arrow("SELECT no_such_column FROM models", name="broken"),
                    lambda: list(catalog.batches("SELECT no_such_column FROM models", 10, name="broken"))):
            with pytest.raises(QueryError) as caught:
                run()
            assert caught.value.name == "broken"
            assert "no_such_column" in caught.value.reason and str(catalog.root) not in caught.value.reason
            assert str(caught.value) == f"{catalog.root}: {caught.value.reason}"  # the message names the store
    finally:
        catalog.close()


def test_every_query_logs_its_name_and_wall_time(synthetic_store, caplog) -> None:
    catalog = Catalog(synthetic_store(**SMALL))
    try:
        with caplog.at_level(logging.DEBUG, logger=QUERY_LOG.name):
            catalog.query("SELECT count(*) FROM predictions", name="counted")
            catalog.arrow("SELECT * FROM models", name="as_arrow")
            list(catalog.batches("SELECT * FROM samples", 4, name="in_batches"))
            with pytest.raises(QueryError):
                catalog.query("SELECT nothing", name="failed")
        logged = [record.getMessage() for record in caplog.records if record.name == QUERY_LOG.name]
        for name in ("counted", "as_arrow", "in_batches", "failed"):
            line = next(line for line in logged if line.startswith(f"query {name}:"))
            assert float(line.split(": ")[1].removesuffix(" s")) >= 0.0
    finally:
        catalog.close()


def test_a_query_past_its_time_limit_is_interrupted(synthetic_store) -> None:
    catalog = Catalog(synthetic_store(**SMALL))
    try:
        slow = "SELECT count(*) FROM range(100000000000) a"  # never finishes within a test's patience
        with pytest.raises(QueryTimeout, match="stopped after 0.2 s") as caught:
            catalog.query(slow, name="endless", timeout=0.2)
        assert caught.value.name == "endless" and caught.value.reason.startswith("query stopped after")
        assert catalog.query("SELECT 1 AS one", name="after")["one"].to_list() == [1]  # the catalog still works
    finally:
        catalog.close()


def test_a_filter_error_gives_the_reason_not_the_store_path(synthetic_store) -> None:
    catalog = Catalog(synthetic_store(**SMALL))
    try:
        with pytest.raises(FilterError) as caught:
            presets.count_rows(catalog, "label_name > 3")  # text compared with a number: DuckDB refuses
        assert str(caught.value).startswith("the filter could not run: ")
        assert str(catalog.root) not in str(caught.value)
        assert isinstance(caught.value.__cause__, QueryError) and caught.value.__cause__.name == "filtered"
    finally:
        catalog.close()


# -- one record for every derived file ----------------------------------------------------------------------

@pytest.fixture
def indexed(synthetic_store, pristine_copy):
    """This test's copy of a small store with every derived file built and fresh."""
    store = pristine_copy(synthetic_store(**SMALL))
    derived.build_all(store)
    assert sample_index.is_fresh(store) and aggregates.is_fresh(store)
    return store


def test_each_derived_file_records_its_inputs_their_rows_and_its_definition(indexed) -> None:
    files = reader.prediction_files(indexed)
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in files)
    for name, definition in ((layout.BY_SAMPLE_RECORD, sample_index.definition()),
                             (layout.AGGREGATES_RECORD, aggregates.definition(20))):
        record = reader.read_json(derived_record.record_path(indexed, name))
        assert record["files"] == [str(path.relative_to(indexed)) for path in files]
        assert record["inputs"] == {"digest": derived_record.Inputs.of(indexed, files).digest, "rows": rows}
        assert record["definition"] == definition
    record = reader.read_json(derived_record.record_path(indexed, layout.BY_SAMPLE_RECORD))
    assert record["outputs"] == {layout.BY_SAMPLE: rows}


def test_a_changed_definition_is_never_served_and_compute_index_rebuilds_it(indexed, monkeypatch) -> None:
    catalog = Catalog(indexed)
    old = catalog.query("SELECT sum(finite)::BIGINT AS n, count(*) AS groups FROM class_sums", name="test").row(0)
    assert catalog.has_aggregates
    catalog.close()
    real = aggregates.definitions

    def changed(num_samples, by_sample):  # an upgrade that computes one pre-aggregate another way
        sql = real(num_samples, by_sample)  # (a column the files' cross-checks do not tie to the others)
        return {**sql, "class_sums": sql["class_sums"].replace("FILTER (WHERE finite) AS finite",
                                                               "FILTER (WHERE finite) + 1 AS finite")}

    monkeypatch.setattr(aggregates, "definitions", changed)
    assert not aggregates.is_fresh(indexed)
    catalog = Catalog(indexed)
    try:  # the old file stays on disk but is not read: the catalog runs the new definition
        assert not catalog.has_aggregates and catalog.aggregates_hint
        assert catalog.query("SELECT sum(finite)::BIGINT AS n FROM class_sums", name="test")["n"][0] == old[0] + old[1]
    finally:
        catalog.close()
    derived.build_aggregates(indexed)  # what `compute index` runs
    catalog = Catalog(indexed)
    try:
        assert catalog.has_aggregates
        assert catalog.query("SELECT sum(finite)::BIGINT AS n FROM class_sums", name="test")["n"][0] == old[0] + old[1]
    finally:
        catalog.close()
    monkeypatch.setattr(sample_index, "VERSION", sample_index.VERSION + 1)  # the index's definition too
    assert not sample_index.is_fresh(indexed)


def test_a_model_extracted_again_under_the_same_id_makes_derived_files_stale(indexed) -> None:
    model = reader.complete_partitions(indexed)[0]["model_id"]
    rng = np.random.default_rng(7)
    labels = pq.read_table(indexed / layout.SAMPLES).column("label").to_numpy()
    columns = synthetic.prediction_columns(rng, labels, 10, 0.5, *synthetic.classifier(rng, 10))
    synthetic.write_partition(indexed, model, "fog", 1, columns)  # same id, same file names, other rows
    assert not sample_index.is_fresh(indexed) and not aggregates.is_fresh(indexed)
    derived.build_all(indexed)
    assert sample_index.is_fresh(indexed) and aggregates.is_fresh(indexed)


# -- a store opened once per catalog ------------------------------------------------------------------------

def test_a_catalog_parses_the_manifest_once_and_lists_the_partitions_at_most_once(indexed, monkeypatch) -> None:
    """A store whose derived files name its generation (store.derived_record) opens without listing its
    prediction files; without a generation they are listed once per catalog, builds included."""
    calls = {"read_manifest": 0, "prediction_files": 0}
    for name in calls:
        real = getattr(reader, name)
        monkeypatch.setattr(reader, name, lambda *a, real=real, name=name, **k: calls.__setitem__(
            name, calls[name] + 1) or real(*a, **k))
    for listings, step in ((0, "records of the store's generation"), (1, "a store without a generation")):
        calls.update(dict.fromkeys(calls, 0))
        catalog = Catalog(indexed)
        catalog.close()
        assert catalog.has_sample_index and catalog.has_aggregates and catalog.has_serving, step
        assert calls == {"read_manifest": 1, "prediction_files": listings}, step
        for build in (derived.build_sample_index, derived.build_aggregates):  # a build judges with its catalog
            calls.update(dict.fromkeys(calls, 0))
            build(indexed)
            assert calls == {"read_manifest": 1, "prediction_files": listings}, (build.__name__, step)
        (indexed / layout.GENERATION).unlink(missing_ok=True)


def test_at_most_one_statement_per_slot_runs_in_duckdb_at_once(synthetic_store, monkeypatch) -> None:
    import threading

    from store import catalog as catalog_module

    slots = catalog_module.QuerySlots(2)
    monkeypatch.setattr(catalog_module, "QUERY_SLOTS", slots)
    running, most, lock, start = [0], [0], threading.Lock(), threading.Barrier(6)
    catalog = Catalog(synthetic_store(**SMALL))
    connection = catalog._connection
    real = connection.cursor

    class Counted:  # a cursor that counts the statements DuckDB runs at once
        def __init__(self) -> None:
            self.cursor = real()

        def sql(self, sql, params=None):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                threading.Event().wait(0.05)  # long enough for the other threads to ask meanwhile
                return self.cursor.sql(sql, params=params)
            finally:
                with lock:
                    running[0] -= 1

        def __getattr__(self, name):
            return getattr(self.cursor, name)

    class Connection:
        def cursor(self):
            return Counted()

    try:
        catalog._connection = Connection()

        def ask() -> None:
            start.wait()
            catalog.query("SELECT count(*) FROM models", name="counted")

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert most[0] == 2  # six at once asked, two ran at a time
        with slots.slot():  # a query inside another's slot does not wait for a second one (no deadlock)
            assert catalog.query("SELECT 1 AS one", name="nested")["one"][0] == 1
    finally:
        catalog._connection = connection
        catalog.close()


def test_opening_a_store_imports_neither_pandas_nor_pyarrow_dataset(indexed) -> None:
    """Half a second of a fresh server's first page was pq.read_table's dataset layer importing pandas (the
    classifiers, and the pre-aggregates' check of a fresh store)."""
    import subprocess
    import sys

    store = indexed
    code = ("import sys; from store.catalog import Catalog; Catalog(sys.argv[1]).close(); "
            "print(sorted(m for m in ('pandas', 'pyarrow.dataset') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parents[2])
    assert found.returncode == 0, found.stderr[-2000:]
    assert found.stdout.strip() == "[]"


def test_a_freed_query_slot_goes_to_the_oldest_waiter() -> None:
    import threading

    from store.catalog import QuerySlots

    slots, order = QuerySlots(1), []
    holder = slots.slot()
    holder.__enter__()

    def ask(name: str) -> None:
        with slots.slot():
            order.append(name)

    threads = []
    for name in ("first", "second", "third"):
        threads.append(threading.Thread(target=ask, args=(name,)))
        threads[-1].start()
        while len(slots._waiting) < len(threads):  # each waits before the next asks
            threading.Event().wait(0.001)
    holder.__exit__(None, None, None)
    for thread in threads:
        thread.join()
    assert order == ["first", "second", "third"]
