"""Past one machine: --shard K/N splits the work list deterministically and shards running at once fill one
store with exactly the rows of an unsharded run; --executor ray computes the same rows as Ray tasks."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from compute import footprint
from compute.__main__ import build_parser, main
from compute.executors import ExecutorError, RayExecutor
from compute.worklist import Shard, work_list
from store import layout, provenance, reader, sample_index, writer
from testkit.extraction import (
    CORRUPTIONS,
    PARTITIONS_PER_MODEL,
    ROOT,
    SEVERITIES,
    assert_same_rows,
    duplicate_keys,
    extract_args,
    prediction_rows,
    start_extract,
)

SHARDS = 3


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, checkpoints) -> Path:
    """One ordinary run, one torch thread like the subprocesses (so floats are computed alike)."""
    store = tmp_path_factory.mktemp("unsharded") / "store"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(extract_args(store, checkpoints)) == 0
    finally:
        torch.set_num_threads(threads)
    return store


@pytest.mark.parametrize("count", [1, 2, 3, 5, 14, 20])
def test_shards_cover_the_work_list_exactly_once_in_order(count) -> None:
    items = work_list(["a", "b"], CORRUPTIONS, SEVERITIES)
    parts = [Shard(index, count).select(items) for index in range(count)]
    assert [item for part in parts for item in part] == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    # Deterministic: shard K/N of the same arguments, parsed and built afresh as another process does it.
    again = work_list(["a", "b"], list(CORRUPTIONS), list(SEVERITIES))
    assert parts == [Shard.parse(f"{index}/{count}").select(again) for index in range(count)]


def test_shards_are_the_contiguous_slices_of_the_work_list() -> None:
    items = work_list(["a", "b"], ["fog"], [1, 2])  # clean a, clean b, fog/1 a, fog/1 b, fog/2 a, fog/2 b
    assert [Shard(index, 4).select(items) for index in range(4)] == \
        [items[0:1], items[1:3], items[3:4], items[4:6]]
    assert [Shard(index, 6).select(items) for index in range(6)] == [[item] for item in items]
    assert [Shard(index, 8).select(items) for index in range(8)] == \
        [[], [items[0]], [items[1]], [items[2]], [], [items[3]], [items[4]], [items[5]]]


def test_work_list_keeps_each_setting_s_models_together() -> None:
    items = work_list(["a", "b", "c"], ["fog"], [1, 2])
    assert [item.setting for item in items] == [("clean", 0)] * 3 + [("fog", 1)] * 3 + [("fog", 2)] * 3


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shards_are_refused_with_the_expected_form(text, capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["extract", "--store", "s", "--checkpoints", "c.pt", "--shard", text])
    assert "K/N" in capsys.readouterr().err


@pytest.mark.slow  # three extraction processes at once
def test_concurrent_shards_write_exactly_the_rows_of_one_unsharded_run(tmp_path, checkpoints, unsharded) -> None:
    store = tmp_path / "store"
    processes = [start_extract(store, checkpoints, "--shard", f"{k}/{SHARDS}") for k in range(SHARDS)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    written = [int(out.split(" partitions written")[0].rsplit(" ", 1)[-1]) for out, _ in outputs]
    assert sum(written) == len(checkpoints) * PARTITIONS_PER_MODEL and min(written) > 0

    sharded_rows = prediction_rows(store)
    assert duplicate_keys(sharded_rows) == 0
    assert_same_rows(sharded_rows, prediction_rows(unsharded))
    assert pq.read_table(store / layout.MODELS).sort_by("model_id").drop(footprint.LATENCY_FIELDS).to_pylist() == \
        pq.read_table(unsharded / layout.MODELS).sort_by("model_id").drop(footprint.LATENCY_FIELDS).to_pylist()
    assert reader.complete_partitions(store) == reader.complete_partitions(unsharded)
    assert sample_index.is_fresh(store), "the shard that finished last builds the by-sample index"
    assert any(f"by-sample index: {store}" in out for out, _ in outputs)


def test_only_the_shard_that_completes_the_store_builds_the_index(two_shards) -> None:
    first, last = two_shards.runs  # shard 1/2, then 0/2 (built once a session, tests/conftest.py)
    assert first.returncode == 0, first.stderr
    assert "not built yet" in first.stdout and not two_shards.index_fresh[0]
    assert last.returncode == 0, last.stderr
    assert f"by-sample index: {two_shards.store}" in last.stdout and two_shards.index_fresh[1]


def test_models_upsert_waits_for_the_store_lock(tmp_path) -> None:
    row = {"model_id": "m", "arch": "a", "method": "dense", "target_sparsity": 0.0, "sparsity": 0.0, "seed": 0,
           "num_params": 1, "num_nonzero": 1, "checkpoint": None, "hparams": "{}", "clean_accuracy": 0.5,
           "base": None, "loader": '{"kind": "checkpoint"}'}
    with writer.locked(tmp_path):  # another shard is reading and replacing models.parquet
        upsert = threading.Thread(target=writer.upsert_models, args=(tmp_path, [row]))
        upsert.start()
        upsert.join(timeout=1.0)
        assert upsert.is_alive() and not (tmp_path / layout.MODELS).exists()
    upsert.join(timeout=30)
    assert pq.read_table(tmp_path / layout.MODELS).to_pylist() == [{**dict.fromkeys(layout.MODEL_SCHEMA.names), **row}]


def test_a_shard_without_the_clean_partition_leaves_clean_accuracy_to_its_owner(synthetic_store,
                                                                                  pristine_copy) -> None:
    store = pristine_copy(synthetic_store(num_models=1, num_samples=20, corruptions=("fog",), severities=(1,)))
    row = pq.read_table(store / layout.MODELS).to_pylist()[0]
    expected = row["clean_accuracy"] = reader.clean_accuracy(store, row["model_id"])
    writer.upsert_models(store, [{**row, "clean_accuracy": None}])  # e.g. the shard that ran fog/1 only
    assert pq.read_table(store / layout.MODELS).to_pylist() == [row]
    marker = store / layout.COMPLETE / f"{row['model_id']}__clean__0.json"
    marker.unlink()  # while the clean partition is not complete, nobody knows the accuracy
    writer.upsert_models(store, [{**row, "clean_accuracy": None}])
    assert pq.read_table(store / layout.MODELS).column("clean_accuracy").to_pylist() == [None]
    assert expected is not None


@pytest.fixture
def local_ray():
    import ray  # requirements-dev.txt installs requirements-optional.txt: this test never skips

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


@pytest.mark.slow  # Ray: starts a local Ray instance
def test_ray_executor_writes_the_rows_of_a_local_run(tmp_path, checkpoints, unsharded, local_ray) -> None:
    store = tmp_path / "store"
    assert main(extract_args(store, checkpoints, "--corruptions", "fog", "--severities", "3",
                             "--executor", "ray")) == 0
    expected = prediction_rows(unsharded)
    settings = {("clean", 0), ("fog", 3)}
    keep = [(c, s) in settings for c, s in zip(expected.column("corruption").to_pylist(),
                                                expected.column("severity").to_pylist(), strict=True)]
    assert_same_rows(prediction_rows(store), expected.filter(keep))
    assert len(reader.complete_partitions(store)) == 2 * len(checkpoints)
    assert set(provenance.read(store)) == {"clean/0", "fog/3"} and sample_index.is_fresh(store)  # one path
    assert main(extract_args(store, checkpoints, "--corruptions", "fog", "--severities", "3",
                             "--executor", "ray")) == 0  # a rerun finds everything complete
    assert len(list((store / layout.PREDICTIONS).rglob("*.parquet"))) == 2 * len(checkpoints)


def test_ray_executor_without_ray_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ExecutorError, match="requirements-optional.txt"):
        RayExecutor()
