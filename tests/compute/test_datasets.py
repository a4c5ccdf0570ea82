"""Dataset loaders: digits, CIFAR-10 pickle batches, CIFAR-10-C .npy files, and their downloads.

Fixtures are written in the published formats by testkit/datasets.py; downloads are served from a local
HTTP server on 127.0.0.1, so nothing here needs the internet.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compute import datasets
from compute.datasets import cifar10, cifar10c, download
from compute.datasets.base import DataError, Dataset
from testkit.datasets import (
    cifar10_batch,
    make_cifar10_tarball,
    make_cifar10c_tarball,
    pin_archives,
    random_images,
    serve_directory,
    write_cifar10,
    write_cifar10c,
    write_python2_pickle,
)

pytestmark = pytest.mark.usefixtures("no_proxy_for_localhost")  # local servers, reached directly


def assert_same_dataset(loaded: Dataset, written: Dataset) -> None:
    assert loaded.class_names == written.class_names
    for split in ("train", "test"):
        got, want = getattr(loaded, split), getattr(written, split)
        assert got.images.dtype == np.uint8 and got.labels.dtype == np.int64
        np.testing.assert_array_equal(got.images, want.images)
        np.testing.assert_array_equal(got.labels, want.labels)


# --- digits (embedded) -------------------------------------------------------------------------------


def test_digits_are_32x32_rgb_uint8_with_ten_classes() -> None:
    data = datasets.load("digits")
    assert data.num_classes == 10 and data.image_size == 32
    for split in (data.train, data.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
        assert split.labels.dtype == np.int64
    assert len(data.train) + len(data.test) == 1797


def test_digits_split_is_stratified_and_deterministic() -> None:
    first, second = datasets.load("digits"), datasets.load("digits")
    assert set(first.test.labels.tolist()) == set(range(10))
    class_share_test = np.bincount(first.test.labels) / np.bincount(
        np.concatenate([first.train.labels, first.test.labels])
    )
    assert np.all(np.abs(class_share_test - 0.3) < 0.02)
    np.testing.assert_array_equal(first.test.images, second.test.images)
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    np.testing.assert_array_equal(first.train.labels, second.train.labels)


def test_unknown_dataset_name_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match="known datasets: digits, cifar10, cifar100, tinyimagenet, imagenet, "
                       "imagefolder"):
        datasets.load("mnist")


# --- CIFAR-10 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("subfolder", ["", "cifar-10-batches-py"], ids=["parent", "batches-folder"])
def test_cifar10_round_trip(tmp_path: Path, subfolder: str) -> None:
    written = write_cifar10(tmp_path, n_train=23, n_test=9, seed=3)
    loaded = datasets.load("cifar10", root=str(tmp_path / subfolder))
    assert loaded.name == "cifar10" and len(loaded.train) == 23 and len(loaded.test) == 9
    assert_same_dataset(loaded, written)


def test_cifar10_rows_are_channel_major_rgb_row_by_row(tmp_path: Path) -> None:
    """A row is 1024 red values (row-major), then 1024 green, then 1024 blue; the row is built by hand."""
    write_cifar10(tmp_path)
    row = np.zeros((1, 3072), dtype=np.uint8)
    y, x = 3, 7
    row[0, 0 * 1024 + y * 32 + x] = 200
    row[0, 1 * 1024 + y * 32 + x] = 100
    row[0, 2 * 1024 + y * 32 + x] = 50
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [4], b"data": row, b"filenames": [b"a.png"]}
    write_python2_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", batch)
    image = cifar10.load(tmp_path).test.images[0]
    assert image[y, x].tolist() == [200, 100, 50]
    assert image[x, y].tolist() == [0, 0, 0]
    assert int(image.sum()) == 350


def test_cifar10_without_data_dir_says_which_flag_to_pass() -> None:
    with pytest.raises(DataError, match=r"cifar10 needs --data-dir DIR containing cifar-10-batches-py/"):
        datasets.load("cifar10")
    with pytest.raises(DataError, match="--download needs --data-dir"):
        datasets.load("cifar10", download=True)


def test_cifar10_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as error:
        cifar10.load(missing)
    assert str(missing / "cifar-10-batches-py") in str(error.value)


def test_cifar10_directory_without_batches_lists_its_content(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not CIFAR")
    with pytest.raises(DataError, match="no CIFAR-10 batches") as error:
        cifar10.load(tmp_path)
    assert "notes.txt" in str(error.value)


def test_cifar10_missing_batch_file_is_named_and_found_files_listed(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as error:
        cifar10.load(tmp_path)
    message = str(error.value)
    assert str(folder / "data_batch_3") in message
    assert "found in" in message and "data_batch_4" in message and "test_batch" in message


@pytest.mark.parametrize("name", ["test_batch", "data_batch_2", "batches.meta"])
def test_cifar10_truncated_pickle_is_named(tmp_path: Path, name: str) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / name
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match="truncated") as error:
        cifar10.load(tmp_path)
    assert str(path) in str(error.value)


def _with(key: bytes, value: Any) -> Callable[[dict[bytes, Any]], None]:
    """A change to a batch dict: set `key` to `value`."""

    def change(batch: dict[bytes, Any]) -> None:
        batch[key] = value

    return change


def _without(key: bytes) -> Callable[[dict[bytes, Any]], None]:
    """A change to a batch dict: drop `key`."""

    def change(batch: dict[bytes, Any]) -> None:
        del batch[key]

    return change


# Each case breaks test_batch (4 images) one way; the message must name the file and say what is wrong.
BROKEN_BATCHES = {
    "data-wrong-width": (
        _with(b"data", np.zeros((4, 3000), np.uint8)),
        ["b'data'", "(4, 3000)", "(N, 3072)"],
    ),
    "data-hwc-not-rows": (_with(b"data", np.zeros((4, 32, 32, 3), np.uint8)), ["b'data'", "(4, 32, 32, 3)"]),
    "data-float32": (_with(b"data", np.zeros((4, 3072), np.float32)), ["b'data'", "float32", "uint8"]),
    "data-not-array": (_with(b"data", [[0] * 3072] * 4), ["b'data'", "list"]),
    "label-10": (_with(b"labels", [0, 1, 10, 2]), ["b'labels'[2] = 10", "0..9"]),
    "label-negative": (_with(b"labels", [0, -1, 1, 2]), ["b'labels'[1] = -1"]),
    "labels-too-few": (_with(b"labels", [0, 1, 2]), ["b'labels'", "(3,)", "(4,)"]),
    "labels-not-integers": (_with(b"labels", [0.5, 1.0, 2.0, 3.0]), ["b'labels'", "float64"]),
    "no-labels-key": (_without(b"labels"), ["no key b'labels'", "b'data'"]),
    "no-data-key": (_without(b"data"), ["no key b'data'"]),
}


@pytest.mark.parametrize("case", BROKEN_BATCHES, ids=list(BROKEN_BATCHES))
def test_cifar10_broken_batch_is_reported_with_file_and_key(tmp_path: Path, case: str) -> None:
    write_cifar10(tmp_path)
    change, expected = BROKEN_BATCHES[case]
    rng = np.random.default_rng(0)
    batch = cifar10_batch(random_images(rng, 4), np.array([0, 1, 2, 3]), "testing batch 1 of 1")
    change(batch)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    write_python2_pickle(path, batch)
    with pytest.raises(DataError) as error:
        cifar10.load(tmp_path)
    message = str(error.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_cifar10_pickle_of_something_else_is_reported(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="should hold a pickled dict, holds list") as error:
        cifar10.load(tmp_path)
    assert str(path) in str(error.value)


def test_cifar10_meta_without_ten_names_is_reported(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "batches.meta"
    write_python2_pickle(path, {b"label_names": [b"cat", b"dog"]})
    with pytest.raises(DataError, match="list of 10 names") as error:
        cifar10.load(tmp_path)
    assert str(path) in str(error.value)


# --- CIFAR-10-C --------------------------------------------------------------------------------------


@pytest.mark.parametrize("inside", [False, True], ids=["npy-folder", "parent-of-CIFAR-10-C"])
def test_cifar10c_every_severity_is_its_own_block_of_rows(tmp_path: Path, inside: bool) -> None:
    folder = tmp_path / "CIFAR-10-C" if inside else tmp_path
    written = write_cifar10c(folder, names=("fog", "snow"), n=6, seed=1)
    for name in ("fog", "snow"):
        raw = np.load(folder / f"{name}.npy")
        for severity in range(1, 6):
            loaded = cifar10c.load_corrupted(tmp_path, name, severity)
            assert loaded.images.dtype == np.uint8 and loaded.labels.dtype == np.int64
            np.testing.assert_array_equal(loaded.images, raw[(severity - 1) * 6 : severity * 6])
            np.testing.assert_array_equal(
                loaded.images, written.images[name][(severity - 1) * 6 : severity * 6]
            )
            np.testing.assert_array_equal(loaded.labels, written.labels)
    one = cifar10c.load_corrupted(tmp_path, "fog", 1).images
    five = cifar10c.load_corrupted(tmp_path, "fog", 5).images
    assert not np.array_equal(one, five)


def test_cifar10c_limit_keeps_the_first_samples_of_the_severity(tmp_path: Path) -> None:
    written = write_cifar10c(tmp_path, names=("fog",), n=8)
    loaded = cifar10c.load_corrupted(tmp_path, "fog", 3, limit=5)
    np.testing.assert_array_equal(loaded.images, written.images["fog"][16:21])
    np.testing.assert_array_equal(loaded.labels, written.labels[:5])
    assert len(cifar10c.load_corrupted(tmp_path, "fog", 3, limit=100)) == 8


def test_cifar10c_labels_follow_a_cifar10_fixture(tmp_path: Path) -> None:
    clean = write_cifar10(tmp_path / "clean", n_test=12)
    write_cifar10c(tmp_path / "c", names=("contrast",), labels=clean.test.labels)
    loaded = cifar10c.load_corrupted(tmp_path / "c", "contrast", 2)
    np.testing.assert_array_equal(loaded.labels, clean.test.labels)


def test_cifar10c_files_are_memory_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10c(tmp_path, names=("fog",))
    modes: list[str | None] = []
    real_load = np.load

    def recording_load(path: Path, *args: Any, **kwargs: Any) -> Any:
        modes.append(kwargs.get("mmap_mode"))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(cifar10c.np, "load", recording_load)
    cifar10c.load_corrupted(tmp_path, "fog", 2)
    assert modes == ["r", "r"]


def test_cifar10c_available_lists_corruption_names_only(tmp_path: Path) -> None:
    write_cifar10c(tmp_path / "CIFAR-10-C", names=("zoom_blur", "brightness", "fog"))
    assert cifar10c.available(tmp_path) == ["brightness", "fog", "zoom_blur"]
    assert cifar10c.available(tmp_path / "CIFAR-10-C") == ["brightness", "fog", "zoom_blur"]


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True])
def test_cifar10c_severity_outside_1_to_5_is_refused(tmp_path: Path, severity: Any) -> None:
    write_cifar10c(tmp_path, names=("fog",))
    with pytest.raises(DataError, match=r"severity must be an integer in 1\.\.5"):
        cifar10c.load_corrupted(tmp_path, "fog", severity)


def test_cifar10c_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as error:
        cifar10c.load_corrupted(tmp_path / "nowhere", "fog", 1)
    assert str(tmp_path / "nowhere") in str(error.value)


def test_cifar10c_missing_corruption_names_file_and_lists_present(tmp_path: Path) -> None:
    write_cifar10c(tmp_path, names=("fog", "snow"))
    with pytest.raises(DataError) as error:
        cifar10c.load_corrupted(tmp_path, "frost", 1)
    message = str(error.value)
    assert str(tmp_path / "frost.npy") in message
    assert "fog.npy, labels.npy, snow.npy" in message


def test_cifar10c_missing_labels_file_is_named(tmp_path: Path) -> None:
    write_cifar10c(tmp_path, names=("fog",))
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(DataError) as error:
        cifar10c.load_corrupted(tmp_path, "fog", 1)
    assert str(tmp_path / "labels.npy") in str(error.value)


@pytest.mark.parametrize("name", ["labels", "../fog", "", "sub/fog"])
def test_cifar10c_name_must_be_a_file_stem(tmp_path: Path, name: str) -> None:
    write_cifar10c(tmp_path, names=("fog",))
    with pytest.raises(DataError, match="is not a corruption name"):
        cifar10c.load_corrupted(tmp_path, name, 1)


@pytest.mark.parametrize("file", ["fog.npy", "labels.npy"])
@pytest.mark.parametrize("keep", [0.5, 0.01, 0.0], ids=["half", "header-cut", "empty"])
def test_cifar10c_truncated_npy_is_named(tmp_path: Path, file: str, keep: float) -> None:
    write_cifar10c(tmp_path, names=("fog",))
    path = tmp_path / file
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep)])
    with pytest.raises(DataError, match="truncated") as error:
        cifar10c.load_corrupted(tmp_path, "fog", 1)
    assert str(path) in str(error.value)


BROKEN_NPY = {
    "images-float32": ("fog.npy", np.zeros((10, 32, 32, 3), np.float32), ["dtype float32", "uint8"]),
    "images-chw": ("fog.npy", np.zeros((10, 3, 32, 32), np.uint8), ["(10, 3, 32, 32)", "(rows, 32, 32, 3)"]),
    "images-64px": ("fog.npy", np.zeros((10, 64, 64, 3), np.uint8), ["(10, 64, 64, 3)"]),
    "rows-not-multiple-of-5": ("fog.npy", np.zeros((12, 32, 32, 3), np.uint8), ["12 rows", "multiple of 5"]),
    "labels-length": ("labels.npy", np.zeros(45, np.uint8), ["(45,)", "(50,)"]),
    "labels-2d": ("labels.npy", np.zeros((50, 1), np.uint8), ["(50, 1)", "(50,)"]),
    "labels-float": ("labels.npy", np.zeros(50, np.float32), ["dtype float32", "integer"]),
    "label-10": ("labels.npy", np.full(50, 10, np.uint8), ["label 10", "0..9"]),
}


@pytest.mark.parametrize("case", BROKEN_NPY, ids=list(BROKEN_NPY))
def test_cifar10c_broken_npy_is_reported_with_file(tmp_path: Path, case: str) -> None:
    file, content, expected = BROKEN_NPY[case]
    write_cifar10c(tmp_path, names=("fog",), n=10)
    np.save(tmp_path / file, content)
    with pytest.raises(DataError) as error:
        cifar10c.load_corrupted(tmp_path, "fog", 1)
    message = str(error.value)
    assert str(tmp_path / file) in message
    for part in expected:
        assert part in message


# --- downloads from a local server -------------------------------------------------------------------


@pytest.fixture
def cifar10_archive(tmp_path: Path) -> tuple[Path, Dataset]:
    """A served folder holding cifar-10-python.tar.gz, and the dataset inside it."""
    written = write_cifar10(tmp_path / "source", n_train=10, n_test=6, seed=7)
    served = tmp_path / "served"
    served.mkdir()
    make_cifar10_tarball(tmp_path / "source", served / "cifar-10-python.tar.gz")
    return served, written


@pytest.fixture
def cifar10c_archive(tmp_path: Path) -> tuple[Path, Path]:
    """A served folder holding CIFAR-10-C.tar, and the folder it was packed from."""
    source = tmp_path / "source-c"
    write_cifar10c(source, names=("fog", "pixelate"), n=4, seed=5)
    served = tmp_path / "served-c"
    served.mkdir()
    make_cifar10c_tarball(source, served / "CIFAR-10-C.tar")
    return served, source


def test_cifar10_download_fetches_once_then_reuses(
    tmp_path: Path, cifar10_archive: tuple[Path, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, written = cifar10_archive
    requests: list[str] = []
    root = tmp_path / "data"
    with serve_directory(served, requests) as url:
        pin_archives(monkeypatch, url, served / "cifar-10-python.tar.gz")
        assert_same_dataset(datasets.load("cifar10", root=str(root), download=True), written)
        assert requests and set(requests) == {"/cifar-10-python.tar.gz"}
        fetched = len(requests)
        assert_same_dataset(datasets.load("cifar10", root=str(root), download=True), written)
        assert len(requests) == fetched
    assert sorted(path.name for path in root.iterdir()) == ["cifar-10-batches-py"]


def test_cifar10_download_of_missing_url_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_directory(tmp_path) as url:
        monkeypatch.setenv(download.MIRROR_VARIABLE, url)
        with pytest.raises(DataError, match="could not download") as error:
            cifar10.load(tmp_path / "data", download=True)
    assert "cifar-10-python.tar.gz" in str(error.value) and "404" in str(error.value)


def test_cifar10_download_does_not_overwrite_a_broken_folder(
    tmp_path: Path, cifar10_archive: tuple[Path, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar10(tmp_path / "data")
    broken = tmp_path / "data" / "cifar-10-batches-py" / "test_batch"
    broken.write_bytes(b"")
    requests: list[str] = []
    with serve_directory(cifar10_archive[0], requests) as url:
        monkeypatch.setenv(download.MIRROR_VARIABLE, url)
        with pytest.raises(DataError, match="delete .* to download CIFAR-10 again") as error:
            cifar10.load(tmp_path / "data", download=True)
    assert str(broken) in str(error.value) and requests == []


def test_download_of_archive_without_the_expected_folder_is_reported(
    tmp_path: Path, cifar10c_archive: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, _ = cifar10c_archive
    (served / "CIFAR-10-C.tar").rename(served / "cifar-10-python.tar.gz")
    with serve_directory(served) as url:
        pin_archives(monkeypatch, url, served / "cifar-10-python.tar.gz")
        with pytest.raises(
            DataError, match=r"should contain the folder cifar-10-batches-py/; it contains.*CIFAR-10-C"
        ):
            cifar10.load(tmp_path / "data", download=True)
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()


def test_cifar10c_download_fetches_once_then_reuses(
    tmp_path: Path, cifar10c_archive: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, source = cifar10c_archive
    requests: list[str] = []
    root = tmp_path / "data"
    with serve_directory(served, requests) as url:
        pin_archives(monkeypatch, url, served / "CIFAR-10-C.tar")
        folder = cifar10c.download_cifar10c(root)
        assert folder == root / "CIFAR-10-C"
        fetched = len(requests)
        assert fetched > 0
        assert cifar10c.download_cifar10c(root) == folder
        assert cifar10c.download_cifar10c(folder) == folder
        assert len(requests) == fetched
    assert cifar10c.available(root) == ["fog", "pixelate"]
    loaded = cifar10c.load_corrupted(root, "pixelate", 4)
    np.testing.assert_array_equal(loaded.images, np.load(source / "pixelate.npy")[12:16])
    assert sorted(path.name for path in root.iterdir()) == ["CIFAR-10-C"]


def test_archives_are_pinned_to_the_published_facts_and_fetched_from_the_mirror_when_set(monkeypatch) -> None:
    # Facts from ../shared/reference/datasets-files.md ("Facts to pin"): size, md5 and sha256 (TFDS).
    cifar = download.ARCHIVES["CIFAR-10-C.tar"]
    assert (cifar.url, cifar.size, cifar.md5, cifar.sha256) == (
        "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar", 2_918_471_680, "56bf5dcef84df0e2308c6dcbcbbd8499",
        "c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7")
    assert download.ARCHIVES["CIFAR-100-C.tar"].md5 == "11f0ed0f1191edbf9fa23466ae6021d3"
    assert download.ARCHIVES["Tiny-ImageNet-C.tar"].url == "https://zenodo.org/records/8206060/files/Tiny-ImageNet-C.tar"
    assert all(len(a.md5) == 32 and (a.sha256 is None or len(a.sha256) == 64) for a in download.ARCHIVES.values())
    monkeypatch.delenv(download.MIRROR_VARIABLE, raising=False)
    assert download.source_url(cifar) == cifar.url
    monkeypatch.setenv(download.MIRROR_VARIABLE, "http://mirror.invalid/data/")
    assert download.source_url(cifar) == "http://mirror.invalid/data/CIFAR-10-C.tar"


def test_a_pickle_that_would_run_code_is_refused(tmp_path) -> None:
    """Batches are unpickled with numpy arrays allowed and nothing else: no code from a data directory."""
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    write_cifar10(tmp_path / "data", n_train=5, n_test=5)
    target = tmp_path / "data" / "cifar-10-batches-py" / "test_batch"
    target.write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(DataError, match="test_batch.*refusing to load"):
        cifar10.load(str(tmp_path / "data"))
    assert not (tmp_path / "pwned").exists()
