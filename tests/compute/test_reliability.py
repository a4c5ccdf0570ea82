"""Compute that never loses work: SIGKILL at random moments and resume, stale temporary files, bad inputs
named by the command line, NaN rows kept and counted, and damaged store files found and named."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analysis import matrices, queries
from compute import checkpoint, datasets, models
from compute.__main__ import main
from store import confine, layout, reader, writer
from store.catalog import Catalog, QueryError
from store.verify import attribution_notes, verify
from testkit.datasets import write_cifar10, write_cifar10c
from testkit.extraction import (
    LIMIT,
    PARTITIONS_PER_MODEL,
    duplicate_keys,
    extract_args,
    prediction_rows,
    save_small_cnn,
    start_extract,
)

KILLS = 5
ONE_SETTING = ("--corruptions", "contrast", "--severities", "1")  # clean + one: two partitions a model


def markers(store: Path) -> int:
    return len(list((store / layout.COMPLETE).glob("*.json"))) if (store / layout.COMPLETE).is_dir() else 0


def kill_at_random_moment(store: Path, checkpoints: list[Path], rng: random.Random, most: int) -> bool:
    """Start an extraction and SIGKILL it at a random moment: after 1..`most` new partitions, or at a random
    time in start-up or the first partition; plus a random delay. True when killed, False when it finished."""
    before = markers(store)
    process = start_extract(store, checkpoints)
    target = rng.randint(0, most)
    deadline = time.monotonic() + (rng.uniform(0.3, 6.0) if target == 0 else 120)
    while process.poll() is None and markers(store) < before + max(target, 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.05))  # within the next partition: one takes about 0.1 s here
    if process.poll() is not None:
        process.communicate()
        return False
    process.send_signal(signal.SIGKILL)
    process.communicate()
    return True


def killed_five_times(store: Path, checkpoints: list[Path], rng: random.Random) -> bool:
    """Kill extractions into `store` until five were killed; False when the work ran out first (a machine
    so fast that a random delay finished the rest)."""
    total = len(checkpoints) * PARTITIONS_PER_MODEL
    kills = 0
    while kills < KILLS:
        remaining = total - markers(store)
        if remaining <= 1:
            return False
        # Leave work for the kills still to come: each may also finish one partition during its delay.
        most = max(1, (remaining - 1) // (KILLS - kills) - 1)
        killed = kill_at_random_moment(store, checkpoints, rng, most)
        kills += killed
        print(f"{'killed' if killed else 'finished'} with {markers(store)}/{total} partitions complete")
    return True


@pytest.mark.slow  # kill/resume: seven extraction processes
def test_extraction_killed_five_times_then_resumed_has_every_partition_exactly_once(tmp_path, monkeypatch,
                                                                                   checkpoints) -> None:
    total = len(checkpoints) * PARTITIONS_PER_MODEL
    seed = int(os.environ.get("PRUNESCOPE_KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    stores = (tmp_path / f"store{attempt}" for attempt in range(5))
    store = next((store for store in stores if killed_five_times(store, checkpoints, rng)), None)
    assert store is not None, f"every attempt finished before it was killed {KILLS} times (seed {seed})"
    process = start_extract(store, checkpoints)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err

    rows = prediction_rows(store)
    assert rows.num_rows == total * LIMIT, f"seed {seed}"
    assert duplicate_keys(rows) == 0, f"seed {seed}"
    assert len(list((store / layout.PREDICTIONS).rglob("*.parquet"))) == total
    complete = reader.complete_partitions(store)
    assert len(complete) == total and all(part["rows"] == LIMIT for part in complete)
    assert not list((store / writer.TMP).iterdir()), "temporary files of killed runs were left behind"
    catalog = Catalog(store)
    matrix = matrices.accuracy_matrix(catalog)
    assert matrix.height == total and set(matrix["samples"].to_list()) == {LIMIT}
    assert queries.models(catalog)["clean_accuracy"].null_count() == 0
    assert verify(store) == []  # checkpoints outside the store are not damage...
    assert len(attribution_notes(store)) == 2  # ...but attribution cannot load them until they are allowed
    monkeypatch.setenv(confine.ROOTS_VARIABLE, str(checkpoints[0].parent))  # the operator allows where they live
    assert attribution_notes(store) == []
    print(f"resumed after {KILLS} kills: {rows.num_rows} rows in {total} partitions, no duplicate key")


def dead_pid() -> int:
    """The process id of a process that has exited."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def test_stale_temporary_files_of_dead_writers_go_and_live_writers_files_stay(tmp_path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = writer._host()
        token = "0" * 32
        tmp = tmp_path / writer.TMP
        tmp.mkdir()
        names = {
            "dead": f"{host}.{dead_pid()}.{token}.part-0.parquet",
            "live": f"{host}.{live.pid}.{token}.part-0.parquet",
            "other-host-new": f"elsewhere.1.{token}.part-0.parquet",
            "other-host-old": f"elsewhere.2.{token}.part-0.parquet",
        }
        for name in names.values():
            (tmp / name).write_bytes(b"partial")
        old = time.time() - writer.STALE_AFTER_S - 60
        os.utime(tmp / names["other-host-old"], (old, old))
        removed = {path.name for path in writer.clean_tmp(tmp_path)}
        assert removed == {names["dead"], names["other-host-old"]}
        assert sorted(path.name for path in tmp.iterdir()) == sorted([names["live"], names["other-host-new"]])
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_a_partition_published_without_its_marker_is_redone_once(tmp_path, capsys, checkpoints) -> None:
    checkpoints = checkpoints[:1]
    store = tmp_path / "store"
    assert main(extract_args(store, checkpoints, *ONE_SETTING)) == 0
    victim = reader.complete_partitions(store)[1]
    keys = [victim[k] for k in ("model_id", "corruption", "severity")]
    (store / layout.COMPLETE / f"{'__'.join(map(str, keys))}.json").unlink()  # killed between the two renames
    stale = store / writer.TMP / f"{writer._host()}.{dead_pid()}.{'0' * 32}.part-0.parquet"
    stale.write_bytes(b"half a file")  # and killed while writing the next one
    capsys.readouterr()
    assert main(extract_args(store, checkpoints, *ONE_SETTING)) == 0
    out = capsys.readouterr().out
    assert "1 partitions written, 1 already complete" in out and "1 stale temporary files removed" in out
    assert not stale.exists()
    assert reader.is_complete(store, *keys)
    assert duplicate_keys(prediction_rows(store)) == 0
    assert prediction_rows(store).num_rows == 2 * LIMIT


# -- bad inputs: the command line returns 2 and names the culprit ------------------------------------

def error_line(ran) -> tuple[int, str]:
    """(exit code, the `error: ...` line of stderr, or all of stderr when there is none) of a `cli` run."""
    return ran.returncode, next((line for line in re.split(r"[\r\n]", ran.stderr) if line.startswith("error: ")),
                                ran.stderr)


def test_checkpoint_whose_shapes_do_not_fit_its_architecture_is_named(tmp_path, cli) -> None:
    path = save_small_cnn(tmp_path / "wrong.pt", 0)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["classifier.weight"] = torch.zeros(10, 7)
    torch.save(payload, path)
    code, err = error_line(cli(*extract_args(tmp_path / "store", [path])))
    assert code == 2
    assert f"error: checkpoint {path}: tensor 'classifier.weight' has shape (10, 7)" in err


class NoFeatures(nn.Module):
    """Classifies, but has no forward_features: it cannot meet the contract."""

    def __init__(self, num_classes: int, mean, std) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))


def test_model_without_the_contract_is_named(tmp_path, cli, monkeypatch) -> None:
    monkeypatch.setitem(models.ARCHITECTURES, "no_features", NoFeatures)
    path = tmp_path / "plain.pt"
    checkpoint.save(path, NoFeatures(10, None, None), arch="no_features", num_classes=10, mean=(0.5,) * 3,
                    std=(0.25,) * 3, dataset="digits", hparams={"model_id": "plain"})
    code, err = error_line(cli(*extract_args(tmp_path / "store", [path])))
    assert code == 2
    assert "error: model plain has no forward_features" in err


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_data_directory_with_a_missing_or_truncated_file_is_named(tmp_path, cli, damage) -> None:
    write_cifar10(tmp_path / "data")
    victim = tmp_path / "data" / "cifar-10-batches-py" / "test_batch"
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:1000])
    code, err = error_line(cli("extract", "--store", tmp_path / "store", "--checkpoints", "unused.pt",
                               "--dataset", "cifar10", "--data-dir", tmp_path / "data"))
    assert code == 2
    assert err.startswith("error: ") and str(victim) in err, err


def test_truncated_corrupted_file_is_named_before_any_partition_is_written(tmp_path, cli) -> None:
    data = write_cifar10(tmp_path / "data", n_test=12)
    corrupted = write_cifar10c(tmp_path / "c10c", names=("fog",), labels=data.test.labels)
    (corrupted.directory / "fog.npy").write_bytes((corrupted.directory / "fog.npy").read_bytes()[:5000])
    model = models.build("small_cnn", 10, (0.5,) * 3, (0.25,) * 3)
    path = tmp_path / "c.pt"
    checkpoint.save(path, model, arch="small_cnn", num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3,
                    dataset="cifar10", hparams={"model_id": "c"})
    store = tmp_path / "store"
    code, err = error_line(cli("extract", "--store", store, "--checkpoints", path, "--dataset", "cifar10",
                               "--data-dir", tmp_path / "data", "--corrupted-dir", corrupted.directory,
                               "--corruptions", "fog", "--severities", "1", "--device", "cpu"))
    assert code == 2
    assert err.startswith("error: ") and str(corrupted.directory / "fog.npy") in err, err
    assert not reader.prediction_files(store)  # --corrupted-dir is checked before the first partition


def store_of_another_schema_version(root: Path) -> Path:
    manifest = json.loads((root / layout.MANIFEST).read_text())
    (root / layout.MANIFEST).write_text(json.dumps({**manifest, "schema_version": layout.SCHEMA_VERSION + 1}))
    return root


def test_store_written_by_another_schema_version_is_named(synthetic_store, pristine_copy, cli, checkpoints) -> None:
    store = store_of_another_schema_version(
        pristine_copy(synthetic_store(num_models=1, num_samples=LIMIT, corruptions=("fog",), severities=(1,))))
    code, err = error_line(cli(*extract_args(store, checkpoints[:1])))
    assert code == 2
    assert f"error: {store / layout.MANIFEST} has schema version {layout.SCHEMA_VERSION + 1}" in err


def nan_for_bright_images(threshold: float) -> nn.Module:
    """A small_cnn whose features are NaN exactly for images with a 3x3 patch of channel 0 summing above
    `threshold`: that patch overflows to inf in block 2 and 0 * inf = NaN in block 3's convolution."""
    model = models.build("small_cnn", 10, (0.0,) * 3, (1.0,) * 3)
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("weight") and tensor.dim() == 4:
            tensor.zero_()
    state["body.0.weight"][0, 0] = 1.0  # channel 0: 3x3 sums of the red channel
    state["body.1.bias"][0] = -threshold  # positive only above the threshold
    state["body.4.weight"][0, 0, 1, 1] = 1e30  # anything positive...
    state["body.5.weight"][0] = 1e30  # ...overflows to inf
    model.load_state_dict(state)
    return model.eval()


def test_nan_features_are_kept_flagged_and_counted(tmp_path, capsys) -> None:
    test = datasets.load("digits").test.subset(LIMIT)
    x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255
    patch_sums = np.sort(F.conv2d(x[:, :1], torch.ones(1, 1, 3, 3), padding=1).amax(dim=(1, 2, 3)).numpy())
    threshold = float(patch_sums[LIMIT // 2 - 1] + patch_sums[LIMIT // 2]) / 2  # half the images overflow
    expected_bad = (F.conv2d(x[:, :1], torch.ones(1, 1, 3, 3), padding=1).amax(dim=(1, 2, 3)) > threshold)
    path = save_small_cnn(tmp_path / "overflow.pt", 0, nan_for_bright_images(threshold))
    store = tmp_path / "store"
    assert main(extract_args(store, [path], *ONE_SETTING)) == 0
    out = capsys.readouterr().out

    rows = prediction_rows(store)
    assert rows.num_rows == 2 * LIMIT  # nothing dropped
    flagged = rows.filter(pc.invert(rows.column("finite")))
    assert 0 < flagged.num_rows < rows.num_rows
    assert f"{flagged.num_rows} rows with non-finite values" in out
    assert f"warning: {flagged.num_rows} rows have NaN/inf" in out and "overflow:" in out
    clean = pq.read_table(reader.partition_file(store, "overflow", layout.CLEAN, 0))
    assert clean.column("finite").to_pylist() == (~expected_bad).tolist()


# -- damaged store files: found and named, other views unaffected --------------------------------------

@pytest.fixture
def store(synthetic_store, pristine_copy, tmp_path) -> Path:
    """A fresh copy of a clean synthetic store, to damage."""
    return pristine_copy(synthetic_store(num_models=3, num_samples=40, corruptions=("fog", "contrast"),
                                         severities=(1, 3)), tmp_path / "store")


def test_clean_store_verifies(store) -> None:
    assert verify(store) == []


def test_truncated_prediction_file_is_named_and_other_views_still_answer(store) -> None:
    victim = reader.partition_file(store, "m01-ft-50", "fog", 3)
    victim.write_bytes(victim.read_bytes()[:-100])
    problems = verify(store)
    assert [(p.path, p.view) for p in problems] == [(victim, "predictions")]
    assert "not a readable Parquet file" in problems[0].message
    assert verify(store, views=("samples", "models")) == []
    assert not reader.is_complete(store, "m01-ft-50", "fog", 3)  # so a rerun of extract redoes it
    catalog = Catalog(store)
    assert queries.models(catalog).height == 3  # the Overview's query
    assert matrices.accuracy_matrix(catalog).height > 0  # served from the markers' sums, no file read
    with pytest.raises(QueryError, match=re.escape(str(victim))):  # a query that reads rows names the file
        queries.sample_rows(catalog, 0)


def test_bytes_damaged_in_place_are_found_by_their_page_checksum(store) -> None:
    victim = reader.partition_file(store, "m02-gmp-50", "contrast", 1)
    chunk = pq.ParquetFile(victim).metadata.row_group(0).column(layout.prediction_schema(10).names.index("logits"))
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    middle = start + chunk.total_compressed_size // 2  # inside the chunk (logits is the last: the footer follows)
    data = bytearray(victim.read_bytes())
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])  # page data; footer intact
    victim.write_bytes(bytes(data))
    assert verify(store, deep=False) == []  # the footer alone cannot tell
    problems = verify(store)
    assert [p.path for p in problems] == [victim] and "checksum" in problems[0].message.lower()


def test_extra_copy_of_a_partition_and_wrong_row_count_are_named(store) -> None:
    original = reader.partition_file(store, "m00-dense-0", "clean", 0)
    copy = original.with_name("part-1.parquet")
    copy.write_bytes(original.read_bytes())
    marker = store / layout.COMPLETE / "m00-dense-0__fog__1.json"
    marker.write_text(json.dumps({"rows": 41, "bytes": 0}))
    problems = {p.path: p.message for p in verify(store, views=("predictions",))}
    assert problems.keys() == {copy, reader.partition_file(store, "m00-dense-0", "fog", 1)}
    assert "unexpected file" in problems[copy]
