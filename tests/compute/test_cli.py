"""The command line: every command explains itself, and bad input gets an error that names it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from compute.__main__ import build_parser, main
from compute.commands import COMMANDS, load


def test_top_level_help_lists_every_command(cli) -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name in result.stdout


def test_a_light_command_does_not_import_torch(tmp_path) -> None:
    """`report` and `verify` answer in a second or two: the registry imports only the command that runs."""
    code = ("import sys; from compute.__main__ import main; main(['verify', '--store', sys.argv[1]]); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout + result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_a_help_that_explains_it(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: python -m compute {command}" in text
    assert len(text.splitlines()) > 5
    assert load(command).HELP


def test_unknown_dataset_is_rejected_with_the_choices(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dataset", "mnist", "--out", "x.pt"])
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0", "6", "a", "1-9", ""])
def test_bad_severities_are_rejected(text, capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--out", "x", "--severities", text])
    assert "severities" in capsys.readouterr().err


def test_cifar10_without_a_data_directory_says_what_to_pass(tmp_path, capsys) -> None:
    assert main(["train", "--dataset", "cifar10", "--out", str(tmp_path / "m.pt")]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_extract_names_a_missing_checkpoint(tmp_path, capsys) -> None:
    code = main(["extract", "--store", str(tmp_path / "s"), "--checkpoints", str(tmp_path / "nope.pt")])
    assert code == 2
    assert "nope.pt does not exist" in capsys.readouterr().err


def test_extract_names_an_unknown_corruption(tmp_path, capsys) -> None:
    code = main(["extract", "--store", str(tmp_path / "s"), "--checkpoints", "x.pt", "--corruptions", "rain"])
    assert code == 2
    assert "unknown corruptions ['rain']" in capsys.readouterr().err


def test_index_command_builds_the_sample_index_and_names_a_non_store(tmp_path, capsys, synthetic_store,
                                                                       pristine_copy) -> None:
    from store import sample_index

    root = pristine_copy(synthetic_store(num_models=2, num_samples=10, corruptions=("contrast",), severities=(1,)))
    assert main(["index", "--store", str(root)]) == 0
    assert sample_index.is_fresh(root)
    assert main(["index", "--store", str(tmp_path / "nothing")]) == 2
    assert "is not a prunescope store" in capsys.readouterr().err


def test_extract_takes_a_users_own_model_by_module_and_function(tmp_path, monkeypatch, capsys) -> None:
    from analysis import matrices
    from store.catalog import Catalog

    (tmp_path / "mynet.py").write_text(
        "from torch import nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
        "                         nn.Linear(4, 10))\n"
        "def broken():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    store = tmp_path / "store"
    args = ["extract", "--store", str(store), "--limit", "12", "--corruptions", "contrast", "--severities", "1",
            "--device", "cpu"]
    assert main([*args, "--model", "mynet:build"]) == 0
    rows = matrices.accuracy_matrix(Catalog(store))
    assert set(rows["model_id"]) == {"build"} and rows["samples"].to_list() == [12, 12]
    assert main([*args, "--model", "mynet:broken"]) == 2
    assert "mynet:broken" in capsys.readouterr().err
    assert main(["extract", "--store", str(store)]) == 2
    assert "nothing to extract" in capsys.readouterr().err


# -- ordinary OS errors and nonsense numbers: one `error:` line, exit 2, nothing already written lost --------

ROOT = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, str]:
    """Hash of every file under `root`, by relative path (what must be byte-identical after a failed run)."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def run_compute(*args: str) -> subprocess.CompletedProcess:
    """`python -m compute ...` in its own process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "compute", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, env=env)


def assert_one_error_line(result: subprocess.CompletedProcess, *phrases: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]


def _mount_tmpfs(path: Path, size: str) -> bool:
    return bool(shutil.which("mount")) and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, check=False
    ).returncode == 0


def _can_mount_tmpfs() -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN): tried once, on a scratch folder."""
    with tempfile.TemporaryDirectory() as scratch:
        if not _mount_tmpfs(Path(scratch), "64k"):
            return False
        subprocess.run(["umount", "-l", scratch], check=False)
        return True


def _can_make_immutable() -> bool:
    """Whether `chattr +i` works here (root ignores permission bits, so it is how root makes a read-only dir)."""
    with tempfile.TemporaryDirectory() as scratch:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", scratch], capture_output=True).returncode:
            return False
        subprocess.run(["chattr", "-i", scratch], check=True)
        return True


# Real full and read-only file systems need these capabilities. CI runs as root, where they exist: there a
# missing one fails the tests instead of skipping them.
IN_CI = bool(os.environ.get("CI"))
needs_tmpfs = pytest.mark.skipif(not IN_CI and not _can_mount_tmpfs(),
                                 reason="cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
needs_immutable = pytest.mark.skipif(
    not IN_CI and os.geteuid() == 0 and not _can_make_immutable(),
    reason="running as root on a file system without immutable directories (chattr +i)")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `path` (a real full or read-only file system)."""
    path.mkdir(parents=True, exist_ok=True)
    assert _mount_tmpfs(path, size), f"cannot mount a tmpfs at {path}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_store(synthetic_store, pristine_copy, tmp_path) -> Path:
    """This test's own copy of a small store (the OS-error tests make it read-only or full)."""
    return pristine_copy(synthetic_store(num_models=2, num_samples=400, corruptions=("fog",), severities=(1,)),
                         tmp_path / "built")


@pytest.mark.slow  # python -m compute as processes
def test_a_store_path_that_is_a_file_is_named(tmp_path) -> None:
    from testkit.extraction import save_small_cnn

    path = tmp_path / "store"
    path.write_text("not a directory")
    checkpoint = save_small_cnn(tmp_path / "m.pt", 0)
    result = run_compute("extract", "--store", str(path), "--checkpoints", str(checkpoint), "--limit", "5",
                         "--corruptions", "fog", "--severities", "1", "--device", "cpu")
    assert_one_error_line(result, f"{path}: ", "a file is in the way")
    assert path.read_text() == "not a directory"
    assert_one_error_line(run_compute("index", "--store", str(path)), f"{path}: ", "it is a file")


@needs_tmpfs
def test_a_read_only_store_is_named_and_left_as_it_was(small_store, tmp_path) -> None:
    with tmpfs(tmp_path / "mnt", "32m") as mount:
        store = mount / "store"
        shutil.copytree(small_store, store)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        before = snapshot(store)
        line = assert_one_error_line(run_compute("index", "--store", str(store)), str(store), "read-only")
        assert snapshot(store) == before, line


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
@needs_tmpfs
def test_a_full_disk_is_named_and_nothing_already_written_is_lost(small_store, tmp_path) -> None:
    with tmpfs(tmp_path / "mnt", "16m") as mount:
        store = mount / "store"
        shutil.copytree(small_store, store)
        subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'filler'}", "bs=4k"], capture_output=True, check=False)
        assert shutil.disk_usage(mount).free == 0
        before = snapshot(store)
        line = assert_one_error_line(run_compute("index", "--store", str(store)), str(store), "no space left")
        assert snapshot(store) == before, line
        assert not list((store / "_tmp").iterdir())  # the partial file is removed


@pytest.mark.slow  # extract as processes, twice
@needs_tmpfs
def test_extract_onto_a_full_disk_names_the_file_and_keeps_the_store(tmp_path) -> None:
    from testkit.extraction import save_small_cnn

    first, second = save_small_cnn(tmp_path / "a.pt", 0), save_small_cnn(tmp_path / "b.pt", 1)
    settings = ("--limit", "20", "--corruptions", "fog", "--severities", "1", "--device", "cpu")
    built = tmp_path / "built"
    assert run_compute("extract", "--store", str(built), "--checkpoints", str(first), *settings).returncode == 0
    with tmpfs(tmp_path / "mnt", "16m") as mount:
        store = mount / "store"
        shutil.copytree(built, store)
        subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'filler'}", "bs=4k"], capture_output=True, check=False)
        before = snapshot(store)
        result = run_compute("extract", "--store", str(store), "--checkpoints", str(second), *settings)
        assert_one_error_line(result, f"{store}/", "no space left")  # the store file it was writing
        assert snapshot(store) == before


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
@needs_immutable
def test_a_store_without_write_permission_is_named(small_store) -> None:
    """Root ignores permission bits, so as root the store's directories are made immutable (chattr +i)."""
    directories = [small_store, *(path for path in small_store.rglob("*") if path.is_dir())]
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", *map(str, directories)], check=True)
        undo = ["chattr", "-i", *map(str, directories)]
    else:
        for path in directories:
            path.chmod(0o555)
        undo = ["chmod", "755", *map(str, directories)]
    try:
        before = snapshot(small_store)
        result = run_compute("index", "--store", str(small_store))
        line = assert_one_error_line(result, str(small_store))
        assert "not permitted" in line or "permission denied" in line, line
        assert snapshot(small_store) == before
    finally:
        subprocess.run(undo, check=True)


RANGES = [
    (["extract", "--store", "S", "--checkpoints", "m.pt", "--limit", "-5"], "--limit"),
    (["extract", "--store", "S", "--checkpoints", "m.pt", "--limit", "0"], "--limit"),
    (["extract", "--store", "S", "--checkpoints", "m.pt", "--batch-size", "0"], "--batch-size"),
    (["extract", "--store", "S", "--checkpoints", "m.pt", "--seed", "-1"], "--seed"),
    (["corrupt", "--out", "S", "--limit", "-1"], "--limit"),
    (["corrupt", "--out", "S", "--batch-size", "0"], "--batch-size"),
    (["corrupt", "--out", "S", "--severities", "6"], "--severities"),
    (["train", "--out", "m.pt", "--epochs", "-1"], "--epochs"),
    (["train", "--out", "m.pt", "--epochs", "0"], "--epochs"),
    (["train", "--out", "m.pt", "--batch-size", "0"], "--batch-size"),
    (["train", "--out", "m.pt", "--lr", "0"], "--lr"),
    (["train", "--out", "m.pt", "--lr", "nan"], "--lr"),
    (["train", "--out", "m.pt", "--weight-decay", "-0.1"], "--weight-decay"),
    (["train", "--out", "m.pt", "--seed", "-3"], "--seed"),
    (["prune", "--method", "ft", "--out", "m.pt", "--sparsity", "1"], "--sparsity"),
    (["prune", "--method", "ft", "--out", "m.pt", "--sparsity", "0"], "--sparsity"),
    (["prune", "--method", "ft", "--out", "m.pt", "--sparsity", "0.5", "--epochs", "0"], "--epochs"),
    (["prune", "--method", "ft", "--out", "m.pt", "--sparsity", "0.5", "--lr", "-1"], "--lr"),
    (["prune", "--method", "ft", "--out", "m.pt", "--sparsity", "0.5", "--dense-epochs", "0"], "--dense-epochs"),
    (["prune", "--method", "ft", "--out", "m.pt", "--sparsity", "0.5", "--rewind-step", "-1"], "--rewind-step"),
    (["embed", "--store", "S", "--sample-severity", "6"], "--sample-severity"),
    (["embed", "--store", "S", "--seed", "-1"], "--seed"),
]


@pytest.mark.parametrize(("argv", "flag"), RANGES, ids=[" ".join(argv[-2:]) for argv, _ in RANGES])
def test_numeric_arguments_out_of_range_are_refused(argv, flag, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.slow  # python -m compute as processes
def test_range_errors_from_the_command_line_leave_the_store_untouched(small_store) -> None:
    before = snapshot(small_store)
    for args in (["extract", "--store", str(small_store), "--checkpoints", "m.pt", "--limit", "-5"],
                 ["embed", "--store", str(small_store), "--sample-severity", "9"]):
        result = run_compute(*args)
        assert result.returncode == 2 and "must be" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(small_store) == before


@pytest.mark.parametrize("damage", ["none", "labels", "dtype", "missing"])
def test_corrupted_dir_is_checked_completely_before_the_first_partition(tmp_path, capsys, damage) -> None:
    from compute import checkpoint, models
    from store import reader
    from testkit.datasets import write_cifar10, write_cifar10c

    data = write_cifar10(tmp_path / "data", n_test=12)
    labels = (data.test.labels + 1) % 10 if damage == "labels" else data.test.labels
    corrupted = write_cifar10c(tmp_path / "c10c", names=("fog", "snow"), labels=labels)
    if damage == "dtype":
        np.save(corrupted.directory / "snow.npy", corrupted.images["snow"].astype(np.float32))
    if damage == "missing":
        (corrupted.directory / "snow.npy").unlink()
    path = tmp_path / "c.pt"
    checkpoint.save(path, models.build("small_cnn", 10, (0.5,) * 3, (0.25,) * 3), arch="small_cnn", num_classes=10,
                    mean=(0.5,) * 3, std=(0.25,) * 3, dataset="cifar10", hparams={"model_id": "c"})
    store = tmp_path / "store"
    code = main(["extract", "--store", str(store), "--checkpoints", str(path), "--dataset", "cifar10",
                 "--data-dir", str(tmp_path / "data"), "--corrupted-dir", str(corrupted.directory),
                 "--corruptions", "fog", "snow", "--severities", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    if damage == "none":  # the check passes a directory that matches the test set
        assert code == 0 and len(reader.prediction_files(store)) == 3, err
        return
    assert code == 2 and err.startswith("error: "), err
    named = {"labels": "labels.npy", "dtype": "snow.npy", "missing": "snow.npy"}[damage]
    assert str(corrupted.directory / named) in err or f"missing {corrupted.directory / named}" in err, err
    assert not store.exists() or not reader.prediction_files(store)
