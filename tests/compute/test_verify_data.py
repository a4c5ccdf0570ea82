"""`python -m compute verify-data`: a folder the user has, checked against per-file md5s.

The folder is CIFAR-10-C's layout (testkit.datasets.write_cifar10c: `<corruption>.npy` + `labels.npy`,
the published names, fewer rows); its md5s are pinned here, in place of the published ones (which are
in compute.datasets.checksums, from datasets-files.md section 2), by computing them from the files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from compute.datasets import checksums
from store.digests import file_digest
from testkit.datasets import write_cifar10, write_cifar10c


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path/CIFAR-10-C with two corruptions and labels, pinned; md5 cache under tmp_path."""
    folder = tmp_path / "CIFAR-10-C"
    write_cifar10c(folder, names=("fog", "pixelate"), n=4)
    monkeypatch.setitem(checksums.FOLDERS, "CIFAR-10-C",
                        {path.name: checksums.FilePin(file_digest(path, "md5")) for path in sorted(folder.iterdir())})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return folder


def verify(cli, folder: Path):
    return cli("verify-data", "--dataset", "cifar10", "--corrupted-dir", folder.parent)


def test_a_matching_folder_passes_and_a_second_run_reads_no_file(folder, cli, monkeypatch) -> None:
    first = verify(cli, folder)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.strip() == f"{folder}: 3 file(s) match the published md5s, 0 missing, 0 extra, 0 changed"
    (folder / ".prunescope-unpacked.json").write_text("{}")  # download's record is not an extra file
    hashed: list[bytes] = []
    real = hashlib.md5
    monkeypatch.setattr(hashlib, "md5", lambda *args, **kwargs: hashed.append(b"") or real(*args, **kwargs))
    second = verify(cli, folder)
    assert second.returncode == 0 and second.stdout == first.stdout and hashed == []


def test_a_flipped_byte_a_missing_and_an_extra_file_are_each_named(folder, cli) -> None:
    assert verify(cli, folder).returncode == 0  # fills the cache: a changed file must not be hidden by it
    fog = folder / "fog.npy"
    content = bytearray(fog.read_bytes())
    pinned = checksums.FOLDERS["CIFAR-10-C"]["fog.npy"].md5
    content[-1] ^= 0x01
    fog.write_bytes(bytes(content))
    (folder / "labels.npy").unlink()
    (folder / "fog (copy).npy").write_bytes(b"x")
    ran = verify(cli, folder)
    assert ran.returncode == 1
    assert ran.stdout.splitlines() == [
        f"{folder / 'labels.npy'}: missing",
        f"{folder / 'fog (copy).npy'}: extra (not a published file)",
        f"{folder / 'fog.npy'}: expected md5 {pinned}, found {hashlib.md5(bytes(content)).hexdigest()}",
        f"{folder}: 1 file(s) match the published md5s, 1 missing, 1 extra, 1 changed",
    ]


def test_a_pinned_size_is_checked_without_reading(folder, cli, monkeypatch) -> None:
    pins = dict(checksums.FOLDERS["CIFAR-10-C"])
    pins["labels.npy"] = checksums.FilePin(pins["labels.npy"].md5, size=50_128)  # the published labels.npy
    monkeypatch.setitem(checksums.FOLDERS, "CIFAR-10-C", pins)
    ran = verify(cli, folder)
    size = (folder / "labels.npy").stat().st_size
    assert ran.returncode == 1 and f"labels.npy: expected 50,128 bytes, found {size:,}" in ran.stdout


def test_bad_requests_get_one_error_line(tmp_path, cli) -> None:
    nothing = cli("verify-data", "--dataset", "cifar10")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == "error: give --data-dir DIR and/or --corrupted-dir DIR: the folders to check"
    absent = cli("verify-data", "--dataset", "cifar100", "--data-dir", tmp_path / "absent")
    assert absent.returncode == 2 and absent.stderr.strip().startswith(f"error: {tmp_path / 'absent'} does not exist")
    unknown = cli("verify-data", "--dataset", "tinyimagenet", "--data-dir", tmp_path)
    assert unknown.returncode == 2 and "invalid choice: 'tinyimagenet'" in unknown.stderr


def test_extract_verify_data_refuses_a_damaged_folder_with_one_line(tmp_path, cli, monkeypatch) -> None:
    write_cifar10(tmp_path / "data", n_train=5, n_test=4)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the published pins: the fixture differs
    ran = cli("extract", "--store", tmp_path / "store", "--dataset", "cifar10", "--data-dir", tmp_path / "data",
              "--verify-data", "--model", "x:y")
    assert ran.returncode == 2
    batches = tmp_path / "data" / "cifar-10-batches-py"
    size = (batches / "data_batch_1").stat().st_size
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]  # after the progress bar
    assert errors == [ran.stderr.strip().splitlines()[-1]] == [
        f"error: {batches / 'data_batch_1'}: expected 31,035,704 bytes, found {size:,} (and 6 more problem(s)); "
        "`python -m compute verify-data --dataset cifar10` lists them all"]
