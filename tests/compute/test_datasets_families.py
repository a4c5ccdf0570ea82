"""CIFAR-100(-C), Tiny-ImageNet(-C), ImageNet(-C) and image folders: loaders on fixtures written in the exact
published layouts (testkit/dataset_families.py), corrupted copies matched by file name, downloads from a
local HTTP server, and the errors a wrong directory gets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from compute import datasets
from compute.datasets import folders, tinyimagenet
from compute.datasets.base import DataError
from testkit.dataset_families import (
    IMAGENET_WNIDS,
    TINY_WNIDS,
    flat_image,
    make_tar,
    make_zip,
    number_of,
    write_cifar100,
    write_cifar100c,
    write_defective_frost,
    write_imagenet_val,
    write_tiny_imagenet,
    write_tiny_imagenet_c,
    write_val_bbox_crops,
)
from testkit.datasets import pin_archives, serve_directory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("no_proxy_for_localhost")  # local servers, reached directly


def numbers(images: np.ndarray) -> list[int]:
    return [number_of(image) for image in images]


# --- CIFAR-100 and CIFAR-100-C ------------------------------------------------------------------------------


@pytest.mark.parametrize("subfolder", ["", "cifar-100-python"])
def test_cifar100_reads_fine_labels_and_names_from_meta(tmp_path: Path, subfolder: str) -> None:
    (train_images, train_labels), (test_images, test_labels), names = write_cifar100(tmp_path)
    data = datasets.load("cifar100", root=str(tmp_path / subfolder))
    assert data.name == "cifar100" and data.class_names == names and data.num_classes == 100
    np.testing.assert_array_equal(data.train.images, train_images)
    np.testing.assert_array_equal(data.train.labels, train_labels)
    np.testing.assert_array_equal(data.test.images, test_images)
    np.testing.assert_array_equal(data.test.labels, test_labels)


def test_cifar100_wrong_directory_names_what_was_expected_where(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError) as error:
        datasets.load("cifar100", root=str(tmp_path))
    message = str(error.value)
    assert str(tmp_path / "cifar-100-python") in message and "train, test, meta" in message
    assert "cifar-10-batches-py" in message


def test_cifar100_meta_without_fine_names_is_named(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    from testkit.datasets import write_python2_pickle

    meta = tmp_path / "cifar-100-python" / "meta"
    write_python2_pickle(meta, {b"coarse_label_names": [b"x"] * 20})
    with pytest.raises(DataError, match="fine_label_names") as error:
        datasets.load("cifar100", root=str(tmp_path))
    assert str(meta) in str(error.value)


def test_cifar100c_uses_the_cifar_c_loader_with_100_classes(tmp_path: Path) -> None:
    _, (_, test_labels), _ = write_cifar100(tmp_path / "clean")
    written = write_cifar100c(tmp_path / "c" / "CIFAR-100-C", test_labels)
    test = datasets.load("cifar100", root=str(tmp_path / "clean")).test
    assert test_labels.max() >= 10  # labels CIFAR-10's range would refuse
    loaded = datasets.load_corrupted("cifar100", tmp_path / "c", "fog", 3, test.subset(4))
    n = len(test_labels)
    np.testing.assert_array_equal(loaded.images, written["fog"][2 * n:2 * n + 4])
    np.testing.assert_array_equal(loaded.labels, test_labels[:4])
    with pytest.raises(DataError, match="outside 0..9"):
        datasets.load_corrupted("cifar10", tmp_path / "c" / "CIFAR-100-C", "fog", 3, test)


def test_cifar100_and_cifar100c_download_from_a_local_server(tmp_path: Path, monkeypatch) -> None:
    _, (test_images, test_labels), _ = write_cifar100(tmp_path / "source")
    written = write_cifar100c(tmp_path / "source-c", test_labels)
    served = tmp_path / "served"
    served.mkdir()
    make_tar(tmp_path / "source" / "cifar-100-python", served / "cifar-100-python.tar.gz", "cifar-100-python")
    make_tar(tmp_path / "source-c", served / "CIFAR-100-C.tar", "CIFAR-100-C")
    requests: list[str] = []
    with serve_directory(served, requests) as url:
        pin_archives(monkeypatch, url, served / "cifar-100-python.tar.gz", served / "CIFAR-100-C.tar")
        data = datasets.load("cifar100", root=str(tmp_path / "data"), download=True)
        np.testing.assert_array_equal(data.test.images, test_images)
        loaded = datasets.load_corrupted("cifar100", tmp_path / "c", "fog", 1, data.test, download=True)
        np.testing.assert_array_equal(loaded.images, written["fog"][:len(test_labels)])
        fetched = len(requests)
        datasets.load_corrupted("cifar100", tmp_path / "c", "fog", 2, data.test, download=True)
        assert len(requests) == fetched
    assert set(requests) == {"/cifar-100-python.tar.gz", "/CIFAR-100-C.tar"}
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["CIFAR-100-C"]


# --- Tiny-ImageNet and Tiny-ImageNet-C ----------------------------------------------------------------------


def test_tinyimagenet_sorted_wnids_words_names_and_val_labels(tmp_path: Path) -> None:
    tiny = write_tiny_imagenet(tmp_path)
    data = datasets.load("tinyimagenet", root=str(tmp_path))
    wnids = sorted(TINY_WNIDS)
    assert wnids != list(TINY_WNIDS)  # the fixture's wnids.txt is unsorted, as published
    assert data.class_names == ("goldfish", "Egyptian cat", "reel")
    assert len(data.train) == tiny.train_count and data.image_size == 64
    # test order: class by class (sorted wnid), file names sorted within a class
    expected_keys = sorted(tiny.val_numbers, key=lambda key: (wnids.index(key.split("/")[0]), key))
    assert list(data.test.keys) == expected_keys
    assert data.test.labels.tolist() == [wnids.index(key.split("/")[0]) for key in expected_keys]
    images = data.test.images
    assert images.shape == (len(expected_keys), 64, 64, 3) and images.dtype == np.uint8
    assert numbers(images) == [tiny.val_numbers[key] for key in expected_keys]
    grey = expected_keys.index("n04067472/val_4.JPEG")  # the greyscale file: three equal channels
    assert np.array_equal(images[grey, ..., 0], images[grey, ..., 2])
    assert sorted(set(data.train.labels.tolist())) == [0, 1, 2]


def reference_64(path: Path) -> np.ndarray:
    """make_tinyimagenet_c.py's clean pipeline (hendrycks/robustness): PIL RGB, then Resize((64, 64))."""
    with Image.open(path) as image:
        return np.asarray(TF.resize(image.convert("RGB"), [64, 64], InterpolationMode.BILINEAR))


@pytest.fixture
def tiny_c(tmp_path: Path) -> tuple[Path, dict[str, int], dict]:
    """Tiny-ImageNet, the clean crops and Tiny-ImageNet-C (fog, severities 1 and 2) under tmp_path."""
    write_tiny_imagenet(tmp_path / "clean")
    crops = write_val_bbox_crops(tmp_path / "crops")
    copies = write_tiny_imagenet_c(tmp_path / "c", crops)
    return tmp_path, crops, copies


def test_tinyimagenet_c_pairs_with_the_clean_crops_by_file_name(tiny_c) -> None:
    root, crops, copies = tiny_c
    data = datasets.load("tinyimagenet", root=str(root / "clean"), clean_dir=str(root / "crops"))
    test = data.test
    wnids = sorted(TINY_WNIDS)
    expected = sorted(crops, key=lambda key: (wnids.index(key.split("/")[0]), key))
    assert list(test.keys) == expected and all("/test_" in key for key in expected)
    assert test.labels.tolist() == [wnids.index(key.split("/")[0]) for key in expected]
    for row, key in enumerate(expected):  # the crops are not 64x64: resized exactly as the generator did
        np.testing.assert_array_equal(test.images[row], reference_64(root / "crops" / "imagenet_val_bbox_crop" / key))
    assert numbers(test.images) == [crops[key] for key in expected]
    for corrupted_root in (root / "c", root / "c" / "Tiny-ImageNet-C"):
        loaded = datasets.load_corrupted("tinyimagenet", corrupted_root, "fog", 2, test)
        assert loaded.paired and list(loaded.keys) == expected
        assert numbers(loaded.images) == [copies[("fog", 2, key)] for key in expected]
        np.testing.assert_array_equal(loaded.labels, test.labels)
    part = datasets.load_corrupted("tinyimagenet", root / "c", "fog", 1, test.subset(2))
    assert numbers(part.images) == [copies[("fog", 1, key)] for key in expected[:2]]
    crops_folder = root / "crops" / "imagenet_val_bbox_crop"
    assert datasets.load("tinyimagenet", root=str(root / "clean"), clean_dir=str(crops_folder)).test.keys == test.keys


def test_tinyimagenet_c_without_the_crops_is_evaluated_unpaired_against_its_own_labels(tiny_c) -> None:
    root, crops, copies = tiny_c
    test = datasets.load("tinyimagenet", root=str(root / "clean")).test  # tiny-imagenet-200/val: val_<k> files
    loaded = datasets.load_corrupted("tinyimagenet", root / "c", "fog", 1, test)
    assert not loaded.paired
    np.testing.assert_array_equal(loaded.labels, test.labels)
    by_class = {wnid: sorted(key for key in crops if key.startswith(wnid)) for wnid in TINY_WNIDS}
    expected = [by_class[key.split("/")[0]][i % 3] for i, key in enumerate(test.keys)]  # 3 val images per class
    assert list(loaded.keys) == expected
    assert numbers(loaded.images) == [copies[("fog", 1, key)] for key in expected]
    assert numbers(datasets.load_corrupted("tinyimagenet", root / "c", "fog", 1, test.subset(4)).images) == \
        numbers(loaded.images)[:4]
    first = root / "c" / "Tiny-ImageNet-C" / "fog" / "1" / expected[0]
    first.unlink()  # a class folder with fewer images than the clean set has of that class
    with pytest.raises(DataError, match="holds 2 images; the clean test set has at least 3 of class") as error:
        datasets.load_corrupted("tinyimagenet", root / "c", "fog", 1, test)
    assert str(first.parent) in str(error.value)


def test_tinyimagenet_c_defective_frost_of_the_old_record_is_refused(tiny_c) -> None:
    root, crops, _ = tiny_c
    frost = write_defective_frost(root / "c")
    test = datasets.load("tinyimagenet", root=str(root / "clean"), clean_dir=str(root / "crops")).test
    for clean in (test, datasets.load("tinyimagenet", root=str(root / "clean")).test):
        with pytest.raises(DataError, match="holds 1000 class folders; Tiny-ImageNet-C has 200") as error:
            datasets.load_corrupted("tinyimagenet", root / "c", "frost", 1, clean)
        assert str(frost) in str(error.value) and "2536630" in str(error.value) and "8206060" in str(error.value)


def test_tinyimagenet_c_missing_copy_and_wrong_directory_are_named(tiny_c) -> None:
    root, _, _ = tiny_c
    test = datasets.load("tinyimagenet", root=str(root / "clean"), clean_dir=str(root / "crops")).test
    (root / "c" / "Tiny-ImageNet-C" / "fog" / "1" / test.keys[3]).unlink()
    with pytest.raises(DataError, match="matched by <class>/<file name>, not by position") as error:
        datasets.load_corrupted("tinyimagenet", root / "c", "fog", 1, test)
    assert test.keys[3] in str(error.value)
    with pytest.raises(DataError, match="<corruption>/<severity>/<class>/<file>") as error:
        datasets.load_corrupted("tinyimagenet", root / "c", "snow", 1, test)
    assert str(root / "c" / "Tiny-ImageNet-C" / "snow" / "1") in str(error.value) and "fog" in str(error.value)
    with pytest.raises(DataError, match="does not exist"):
        datasets.load_corrupted("tinyimagenet", root / "nowhere", "fog", 1, test)


def test_tinyimagenet_clean_dir_errors_name_the_folder(tiny_c) -> None:
    root, _, _ = tiny_c
    with pytest.raises(DataError, match="--clean-dir .* does not exist; expected imagenet_val_bbox_crop/"):
        datasets.load("tinyimagenet", root=str(root / "clean"), clean_dir=str(root / "nowhere"))
    shutil.rmtree(root / "crops" / "imagenet_val_bbox_crop" / TINY_WNIDS[1])
    with pytest.raises(DataError, match=f"no folder for 1 of the 3 Tiny-ImageNet classes \\(e.g. {TINY_WNIDS[1]}\\)"):
        datasets.load("tinyimagenet", root=str(root / "clean"), clean_dir=str(root / "crops"))
    with pytest.raises(DataError, match="--clean-dir does not apply to dataset imagenet"):
        datasets.load("imagenet", root=str(root), clean_dir=str(root / "crops"))


def test_tinyimagenet_wrong_directory_names_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError) as error:
        datasets.load("tinyimagenet", root=str(tmp_path))
    assert str(tmp_path / "tiny-imagenet-200") in str(error.value) and "wnids.txt" in str(error.value)
    tiny = write_tiny_imagenet(tmp_path / "other")
    (tiny.folder / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations.txt"):
        datasets.load("tinyimagenet", root=str(tmp_path / "other"))


def test_tinyimagenet_and_its_c_download_from_the_fixed_record(tmp_path: Path, monkeypatch) -> None:
    tiny = write_tiny_imagenet(tmp_path / "source")
    crops = write_val_bbox_crops(tmp_path / "crops")
    copies = write_tiny_imagenet_c(tmp_path / "source-c", crops, names=("fog", "spatter"), severities=(3,))
    served = tmp_path / "served"
    served.mkdir()
    make_zip(tiny.folder, served / "tiny-imagenet-200.zip", "tiny-imagenet-200")
    # record 8206060: the 15 common corruptions in Tiny-ImageNet-C.tar, the 4 extras in Tiny-ImageNet-C-extra.tar
    with tarfile.open(served / "Tiny-ImageNet-C.tar", "w") as tar:
        for name in tinyimagenet.C_ARCHIVES["Tiny-ImageNet-C.tar"]:
            tar.add(tmp_path / "source-c" / "Tiny-ImageNet-C" / "fog", arcname=f"Tiny-ImageNet-C/{name}")
    with tarfile.open(served / "Tiny-ImageNet-C-extra.tar", "w") as tar:
        for name in tinyimagenet.C_ARCHIVES["Tiny-ImageNet-C-extra.tar"]:
            tar.add(tmp_path / "source-c" / "Tiny-ImageNet-C" / "spatter", arcname=f"Tiny-ImageNet-C/{name}")
    requests: list[str] = []
    with serve_directory(served, requests) as url:
        pin_archives(monkeypatch, url, *sorted(served.iterdir()))
        data = datasets.load("tinyimagenet", root=str(tmp_path / "data"), download=True,
                             clean_dir=str(tmp_path / "crops"))
        assert set(requests) == {"/tiny-imagenet-200.zip"}
        for name in ("fog", "spatter"):
            loaded = datasets.load_corrupted("tinyimagenet", tmp_path / "c", name, 3, data.test, download=True)
            assert numbers(loaded.images) == [copies[(name, 3, key)] for key in data.test.keys]
        fetched = len(requests)
        datasets.load_corrupted("tinyimagenet", tmp_path / "c", "snow", 3, data.test, download=True)
        datasets.load_corrupted("tinyimagenet", tmp_path / "c" / "Tiny-ImageNet-C", "saturate", 3, data.test,
                                download=True)
        datasets.load("tinyimagenet", root=str(tmp_path / "data"), download=True)
        assert len(requests) == fetched
    assert sorted(requests) == ["/Tiny-ImageNet-C-extra.tar", "/Tiny-ImageNet-C.tar", "/tiny-imagenet-200.zip"]
    unpacked = sorted(path.name for path in (tmp_path / "c" / "Tiny-ImageNet-C").iterdir())
    assert unpacked == sorted(name for names in tinyimagenet.C_ARCHIVES.values() for name in names)
    assert sorted(path.name for path in (tmp_path / "c").iterdir()) == ["Tiny-ImageNet-C"]  # archives deleted


# --- ImageNet and ImageNet-C --------------------------------------------------------------------------------


def reference_224(path: Path) -> np.ndarray:
    """torchvision's Resize(256) + CenterCrop(224) on the RGB file: the published ImageNet pipeline."""
    with Image.open(path) as image:
        resized = TF.resize(image.convert("RGB"), 256, InterpolationMode.BILINEAR)
    return np.asarray(TF.center_crop(resized, [224, 224]))


def test_imagenet_val_is_resized_256_and_centre_cropped_224(tmp_path: Path) -> None:
    written = write_imagenet_val(tmp_path)
    data = datasets.load("imagenet", root=str(tmp_path))
    assert data.num_classes == 1000 and data.class_names[:2] == IMAGENET_WNIDS[:2] and len(data.train) == 0
    keys = sorted(written, key=lambda key: (IMAGENET_WNIDS.index(key.split("/")[0]), key))
    assert list(data.test.keys) == keys
    assert data.test.labels.tolist() == [IMAGENET_WNIDS.index(key.split("/")[0]) for key in keys]
    images = data.test.images
    assert images.shape == (len(keys), 224, 224, 3)
    for row, key in enumerate(keys):
        np.testing.assert_array_equal(images[row], reference_224(tmp_path / "val" / key))
    assert numbers(images) == [written[key] for key in keys]


def test_imagenet_decodes_only_what_is_used(tmp_path: Path, monkeypatch) -> None:
    write_imagenet_val(tmp_path)
    data = datasets.load("imagenet", root=str(tmp_path / "val"))
    opened: list[Path] = []
    real = folders._open_rgb
    monkeypatch.setattr(folders, "_open_rgb", lambda path: opened.append(path) or real(path))
    assert data.test.subset(2).images.shape == (2, 224, 224, 3)
    assert len(opened) == 2


def test_imagenet_subset_file_keeps_its_order_and_names_bad_lines(tmp_path: Path) -> None:
    written = write_imagenet_val(tmp_path)
    chosen = [list(written)[4], list(written)[0]]
    subset = tmp_path / "imagenet_test_image_ids.txt"
    subset.write_text("\n".join(chosen))  # RobustBench's file has no final newline
    data = datasets.load("imagenet", root=str(tmp_path), subset=str(subset))
    assert list(data.test.keys) == chosen
    assert numbers(data.test.images) == [written[key] for key in chosen]
    subset.write_text(f"{chosen[0]}\nn99999999/ILSVRC2012_val_00000001.JPEG\n")
    with pytest.raises(DataError, match="line 2"):
        datasets.load("imagenet", root=str(tmp_path), subset=str(subset))
    with pytest.raises(DataError, match="--subset does not apply to dataset cifar10"):
        datasets.load("cifar10", root=str(tmp_path), subset=str(subset))


def test_imagenet_with_missing_class_folders_is_refused(tmp_path: Path) -> None:
    write_imagenet_val(tmp_path)
    (tmp_path / "val" / IMAGENET_WNIDS[7]).rmdir()
    with pytest.raises(DataError, match="has 999 class folders named like n01440764, expected 1000") as error:
        datasets.load("imagenet", root=str(tmp_path))
    assert str(tmp_path / "val") in str(error.value)


def test_imagenet_c_copies_are_used_as_they_are_and_matched_by_name(tmp_path: Path) -> None:
    written = write_imagenet_val(tmp_path / "imagenet")
    test = datasets.load("imagenet", root=str(tmp_path / "imagenet")).test
    for index, key in enumerate(reversed(test.keys)):  # numbers assigned in reverse: order must not matter
        flat_image(tmp_path / "ImageNet-C" / "contrast" / "5" / key, 150 + index, (224, 224))
    flat_image(tmp_path / "ImageNet-C" / "contrast" / "5" / IMAGENET_WNIDS[0] / "ILSVRC2012_val_00000000.JPEG", 1,
               (224, 224))
    loaded = datasets.load_corrupted("imagenet", tmp_path, "contrast", 5, test)
    assert numbers(loaded.images) == [150 + len(test) - 1 - row for row in range(len(test))]
    assert len(written) == len(test)


# --- image folders ------------------------------------------------------------------------------------------


def test_imagefolder_any_tree_any_size_with_the_resize_crop_rule(tmp_path: Path) -> None:
    files = {"cat/a.png": 0, "cat/b.JPG": 1, "ant/c.bmp": 2, "ant/d.webp": 3, "bee/e.jpeg": 4}
    for key, number in files.items():
        flat_image(tmp_path / key, number, (50 + 10 * number, 40))
    (tmp_path / "bee" / "notes.txt").write_text("not an image")
    data = datasets.load("imagefolder", root=str(tmp_path), image_size=24)
    assert data.class_names == ("ant", "bee", "cat") and len(data.train) == 0
    assert list(data.test.keys) == ["ant/c.bmp", "ant/d.webp", "bee/e.jpeg", "cat/a.png", "cat/b.JPG"]
    assert data.test.labels.tolist() == [0, 0, 1, 2, 2]
    images = data.test.images
    assert images.shape == (5, 24, 24, 3) and data.image_size == 24
    with Image.open(tmp_path / "cat" / "a.png") as image:
        expected = TF.center_crop(TF.resize(image.convert("RGB"), 24, InterpolationMode.BILINEAR), [24, 24])
    np.testing.assert_array_equal(images[3], np.asarray(expected))
    assert numbers(images) == [2, 3, 4, 0, 1]


def test_imagefolder_train_and_test_splits_must_share_classes(tmp_path: Path) -> None:
    for split, classes in (("train", ("a", "b")), ("val", ("a", "b"))):
        for number, name in enumerate(classes):
            flat_image(tmp_path / split / name / f"{split}{number}.png", number, (16, 16))
    data = datasets.load("imagefolder", root=str(tmp_path), image_size=16)
    assert len(data.train) == 2 and len(data.test) == 2 and data.class_names == ("a", "b")
    flat_image(tmp_path / "train" / "c" / "x.png", 5, (16, 16))
    with pytest.raises(DataError, match="same class folders; in one only: c"):
        datasets.load("imagefolder", root=str(tmp_path), image_size=16)


def test_imagefolder_wrong_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; expected .*<class>/<image files>"):
        datasets.load("imagefolder", root=str(tmp_path / "nowhere"))
    (tmp_path / "only").mkdir()
    flat_image(tmp_path / "only" / "x.png", 1, (8, 8))
    with pytest.raises(DataError, match="at least 2 class folders"):
        datasets.load("imagefolder", root=str(tmp_path))
    with pytest.raises(DataError, match="--image-size does not apply to dataset tinyimagenet"):
        datasets.load("tinyimagenet", root=str(tmp_path), image_size=64)


@pytest.mark.slow  # python -m compute as processes
def test_cli_refuses_an_option_of_another_dataset_with_one_error_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "compute", "extract", "--store", str(tmp_path / "s"),
                             "--dataset", "digits", "--image-size", "64", "--model", "x:y"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --image-size does not apply to dataset digits (only to imagefolder)"


def test_imagenet_c_downloads_the_tar_holding_the_corruption(tmp_path: Path, monkeypatch) -> None:
    from compute.datasets import imagenet

    write_imagenet_val(tmp_path / "imagenet", classes=(3,), per_class=2)
    test = datasets.load("imagenet", root=str(tmp_path / "imagenet"), download=True).test
    source = tmp_path / "noise"
    for name in imagenet.C_ARCHIVES["noise.tar"]:
        for row, key in enumerate(test.keys):
            flat_image(source / name / "2" / key, 60 + row, (224, 224))
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "noise.tar", "w") as tar:  # corruption folders at the top, as AugMix extracts
        for name in imagenet.C_ARCHIVES["noise.tar"]:
            tar.add(source / name, arcname=name)
    requests: list[str] = []
    with serve_directory(served, requests) as url:
        pin_archives(monkeypatch, url, served / "noise.tar")
        loaded = datasets.load_corrupted("imagenet", tmp_path / "c", "shot_noise", 2, test, download=True)
        assert numbers(loaded.images) == [60, 61]
        fetched = len(requests)
        datasets.load_corrupted("imagenet", tmp_path / "c", "impulse_noise", 2, test, download=True)
        assert len(requests) == fetched
        with pytest.raises(DataError, match="no ImageNet-C archive holds 'blurry'"):
            datasets.load_corrupted("imagenet", tmp_path / "c", "blurry", 2, test, download=True)
    assert set(requests) == {"/noise.tar"}
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(imagenet.C_ARCHIVES["noise.tar"])


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_extract_cli_reads_tiny_imagenet_c_paired_with_crops_and_records_unpaired_without(tiny_c, cli) -> None:
    import pyarrow.dataset as ds
    import torch

    from compute import checkpoint, models
    from store import layout, provenance, reader

    root, _, _ = tiny_c
    torch.manual_seed(0)
    path = root / "m.pt"
    checkpoint.save(path, models.build("small_cnn", 3, [0.5] * 3, [0.25] * 3), arch="small_cnn", num_classes=3,
                    mean=[0.5] * 3, std=[0.25] * 3, dataset="tinyimagenet", hparams={"model_id": "m"})
    common = ("extract", "--checkpoints", path, "--dataset", "tinyimagenet", "--data-dir", root / "clean",
              "--corrupted-dir", root / "c", "--corruptions", "fog", "--limit", "4", "--device", "cpu")
    test = datasets.load("tinyimagenet", root=str(root / "clean"), clean_dir=str(root / "crops")).test
    for store, extra in ((root / "paired", ("--clean-dir", root / "crops")), (root / "unpaired", ())):
        result = cli(*common, "--store", store, "--severities", "1,2", *extra)
        assert result.returncode == 0, result.stderr
        rows = ds.dataset(store / layout.PREDICTIONS, format="parquet", partitioning="hive").to_table()
        assert rows.num_rows == 12
        for corruption, severity in (("clean", 0), ("fog", 1), ("fog", 2)):
            part = rows.filter((ds.field("corruption") == corruption) & (ds.field("severity") == severity))
            assert sorted(zip(part.column("sample_id").to_pylist(), part.column("label").to_pylist(),
                              strict=True)) == list(enumerate(test.labels[:4].tolist()))
    assert provenance.unpaired(reader.read_manifest(root / "paired")) == []
    assert provenance.unpaired(reader.read_manifest(root / "unpaired")) == ["fog/1", "fog/2"]
    missing = cli(*common, "--store", root / "store2", "--severities", "1", "--corruptions", "snow")
    last_line = missing.stderr.strip().splitlines()[-1]  # after extract's progress bar
    assert missing.returncode == 2 and last_line.startswith("error: missing ")
    assert "Tiny-ImageNet-C holds <corruption>/<severity>/<class>/<file>" in last_line
    write_defective_frost(root / "c")
    frost = cli(*common, "--store", root / "store3", "--severities", "1", "--corruptions", "frost")
    last_line = frost.stderr.strip().splitlines()[-1]
    assert frost.returncode == 2 and last_line.startswith("error: ") and "holds 1000 class folders" in last_line
    assert "record 8206060" in last_line


def test_robustbench_subset_ships_pinned_and_selects_its_5000_images_in_order(tmp_path: Path, monkeypatch) -> None:
    from compute.datasets import imagenet

    # Facts from datasets-files.md section 9: 5,000 lines, 997 classes, sha256, first and last line.
    lines = imagenet.ROBUSTBENCH_FILE.read_text().split("\n")
    assert len(lines) == len(set(lines)) == 5000 and len({line.split("/")[0] for line in lines}) == 997
    assert (lines[0], lines[-1]) == ("n09468604/ILSVRC2012_val_00015253.JPEG", "n13133613/ILSVRC2012_val_00025432.JPEG")
    wnids = sorted({line.split("/")[0] for line in lines} | {"n02066245", "n03482405", "n07875152"})
    val = tmp_path / "val"
    for wnid in wnids:
        (val / wnid).mkdir(parents=True)
    jpeg = flat_image(tmp_path / "one.JPEG", 7, (300, 260)).read_bytes()
    for line in lines:
        (val / line).write_bytes(jpeg)
    data = datasets.load("imagenet", root=str(tmp_path), subset="robustbench")
    assert list(data.test.keys) == lines
    assert data.test.labels[:1].tolist() == [wnids.index("n09468604")]
    tampered = tmp_path / "ids.txt"
    tampered.write_text("\n".join(lines[:10]))
    monkeypatch.setattr(imagenet, "ROBUSTBENCH_FILE", tampered)
    with pytest.raises(DataError, match=f"{tampered} has sha256 [0-9a-f]{{64}}, expected {imagenet.ROBUSTBENCH_SHA256}"):
        datasets.load("imagenet", root=str(tmp_path), subset="robustbench")


def test_imagenet_class_names_are_found_in_the_kaggle_layout(tmp_path: Path) -> None:
    # Kaggle's ImageNet: LOC_synset_mapping.txt beside ILSVRC/, the validation images in ILSVRC/Data/CLS-LOC/val/.
    cls_loc = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    write_imagenet_val(cls_loc, classes=(0,), per_class=1)
    (tmp_path / "LOC_synset_mapping.txt").write_text(
        "".join(f"{wnid} name {i}, other name\n" for i, wnid in enumerate(IMAGENET_WNIDS)))
    for root in (cls_loc, cls_loc / "val"):
        names = datasets.load("imagenet", root=str(root)).class_names
        assert names[:2] == ("name 0", "name 1") and names[-1] == "name 999"


def test_sample_and_samples_pages_say_when_a_settings_images_are_unpaired(synthetic_store, pristine_copy, open_page) -> None:
    import json

    from dashboard.pages import PAGES
    from store import layout, provenance, reader

    shared = synthetic_store(num_models=2, num_samples=30, corruptions=("fog",), severities=(1,))
    store = pristine_copy(shared)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    setting = "fog/1"  # recorded as extraction records Tiny-ImageNet-C read without --clean-dir (see above)
    manifest[provenance.KEY] = {setting: {"source": "files", "layout": "folders", "path": str(store.parent),
                                          "size": 32, "decode": None, "sha256": "0" * 64, provenance.PAIRED: False}}
    (store / layout.MANIFEST).write_text(json.dumps(manifest))
    captions = [caption.value for caption in open_page(store, PAGES["sample"].script).caption]
    assert any(f"Unpaired: the images of `{setting}` are other photographs" in caption for caption in captions), captions
    app = open_page(store, PAGES["samples"].script)
    app.selectbox(key="samples_preset").set_value("robust").run()
    assert any("Unpaired: the images of `fog/1`" in caption.value for caption in app.caption)
    assert provenance.unpaired(reader.read_manifest(store)) == [setting]
    assert provenance.unpaired(reader.read_manifest(shared)) == []
