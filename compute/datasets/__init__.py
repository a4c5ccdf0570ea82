"""Dataset registry: a name maps to a loader `load(root, download, **options) -> Dataset`, and, for the
families with published corrupted copies, to one function returning the corrupted test images.

Add a dataset by adding a module with a `load` function and one line in `LOADERS` (plus `OPTIONS` when it
takes options, `CORRUPTED` / `CORRUPTED_DOWNLOADS` when it has a corrupted layout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compute.datasets import (
    cifar10,
    cifar10c,
    cifar100,
    cifar100c,
    digits,
    imagefolder,
    imagenet,
    tinyimagenet,
)
from compute.datasets.base import DataError, Dataset, FileImageSet, ImageSet

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": digits.load,
    "cifar10": cifar10.load,
    "cifar100": cifar100.load,
    "tinyimagenet": tinyimagenet.load,
    "imagenet": imagenet.load,
    "imagefolder": imagefolder.load,
}
NAMES = tuple(LOADERS)
# Options a loader takes besides root and download (command-line flag = option with '-' for '_').
OPTIONS: dict[str, tuple[str, ...]] = {"imagefolder": ("image_size",), "imagenet": ("subset",),
                                       "tinyimagenet": ("clean_dir",)}


def _cifar_c(load: Callable[..., ImageSet]) -> Callable[..., ImageSet]:
    def load_corrupted(root: str | os.PathLike[str], name: str, severity: int, test: Any) -> ImageSet:
        return load(root, name, severity, limit=len(test))
    return load_corrupted


# `load_corrupted(root, name, severity, test) -> ImageSet`: the copies of `test` (the clean test set, or its
# first rows) under corruption `name` at `severity`, row for row in `test`'s order.
CORRUPTED: dict[str, Callable[..., ImageSet]] = {
    "digits": _cifar_c(cifar10c.load_corrupted),  # `compute corrupt` writes the CIFAR-10-C layout
    "cifar10": _cifar_c(cifar10c.load_corrupted),
    "cifar100": _cifar_c(cifar100c.load_corrupted),
    "tinyimagenet": tinyimagenet.load_corrupted,
    "imagenet": imagenet.load_corrupted,
    "imagefolder": imagefolder.load_corrupted,
}
# `download(root, corruption) -> folder to read from`: fetch the archive holding `corruption` unless present.
CORRUPTED_DOWNLOADS: dict[str, Callable[..., Path]] = {
    "cifar10": lambda root, _corruption: cifar10c.download_cifar10c(root),
    "cifar100": lambda root, _corruption: cifar100c.download(root),
    "tinyimagenet": tinyimagenet.download_corrupted,
    "imagenet": imagenet.download_corrupted,
}


def load(name: str, root: str | None = None, download: bool = False, **options: Any) -> Dataset:
    """Load dataset `name`; `root` is its data directory (required for datasets that are not embedded).

    `options` set to None are ignored; others must be ones the dataset takes (see OPTIONS).
    """
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    given = {key: value for key, value in options.items() if value is not None}
    for key in given:
        if key not in OPTIONS.get(name, ()):
            users = [dataset for dataset, keys in OPTIONS.items() if key in keys]
            raise DataError(f"--{key.replace('_', '-')} does not apply to dataset {name} "
                            f"(only to {', '.join(users) or 'no dataset'})")
    return LOADERS[name](root=root, download=download, **given)


def load_corrupted(name: str, root: str | os.PathLike[str], corruption: str, severity: int,
                   test: ImageSet | FileImageSet, download: bool = False) -> ImageSet:
    """Published corrupted copies of `test` for dataset `name`, aligned row for row with `test`.

    `download` first fetches the family's archive into `root` when it is not there (where one is published).
    """
    if name not in CORRUPTED:
        raise DataError(f"dataset {name!r} has no corrupted-images layout; known: {', '.join(CORRUPTED)}")
    if download:
        if name not in CORRUPTED_DOWNLOADS:
            raise DataError(f"no public download of corrupted {name} images; known: "
                            f"{', '.join(CORRUPTED_DOWNLOADS)}")
        root = CORRUPTED_DOWNLOADS[name](root, corruption)
    return CORRUPTED[name](root, corruption, severity, test)


# The families whose corrupted copies are CIFAR-C-style .npy files: their folder name under `root`.
NPY_FOLDERS = {"digits": cifar10c.FOLDER, "cifar10": cifar10c.FOLDER, "cifar100": cifar100c.FOLDER}


def check_corrupted(name: str, root: str | os.PathLike[str], corruptions: Sequence[str],
                    severities: Sequence[int], test: ImageSet | FileImageSet, download: bool = False) -> None:
    """Everything extraction will read from `root`, checked before it writes anything: every setting's
    copies exist, have the test set's shape and dtype, and carry the test labels in order. DataError names
    the file otherwise. Folder families only list their files here (decoding waits for extraction).
    """
    if name in NPY_FOLDERS:
        if download:
            root = CORRUPTED_DOWNLOADS[name](root, corruptions[0])
        cifar10c.check_directory(root, corruptions, test.labels, folder=NPY_FOLDERS[name])
        return
    for corruption in corruptions:
        for severity in severities:
            copy = load_corrupted(name, root, corruption, severity, test, download=download)
            if not np.array_equal(copy.labels, test.labels):
                raise DataError(f"{root}: {corruption}/{severity} labels differ from the test labels")


__all__ = ["NAMES", "check_corrupted", "load", "load_corrupted"]
