"""CIFAR-100-C: the CIFAR-100 test set under 19 corruptions x 5 severities (Zenodo record 3555552).

Same layout as CIFAR-10-C (`CIFAR-100-C/<corruption>.npy`, uint8 (50000, 32, 32, 3), severity-major
blocks in test-set order, `labels.npy` with the fine labels 0..99), so it is read by the one CIFAR-C
loader, `compute.datasets.cifar10c.load_corrupted`, with this folder name and class count.

`download(root)` fetches `CIFAR-100-C.tar` unless present. Zenodo lists its md5 next to the file; it is
not pinned here (it was not in the sources this was written from), so by default the download is not
checksummed: set PRUNESCOPE_CIFAR100C_MD5 to check it.
    PRUNESCOPE_CIFAR100C_URL  archive URL (default `URL`)
    PRUNESCOPE_CIFAR100C_MD5  md5 of that archive (default: none, not checked)
"""

from __future__ import annotations

import os
from pathlib import Path

from compute.datasets import cifar10c
from compute.datasets.base import ImageSet
from compute.datasets.download import fetch_folder

URL = "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar"
URL_VARIABLE = "PRUNESCOPE_CIFAR100C_URL"
MD5_VARIABLE = "PRUNESCOPE_CIFAR100C_MD5"
FOLDER = "CIFAR-100-C"
NUM_CLASSES = 100


def load_corrupted(root: str | os.PathLike[str], name: str, severity: int, limit: int | None = None) -> ImageSet:
    """The CIFAR-100 test images (first `limit`) under corruption `name` at `severity`."""
    return cifar10c.load_corrupted(root, name, severity, limit, folder=FOLDER, num_classes=NUM_CLASSES)


def download(root: str | os.PathLike[str]) -> Path:
    """Fetch CIFAR-100-C into `root/CIFAR-100-C` unless it (or `root/labels.npy`) is there."""
    root = Path(root).expanduser()
    if (root / cifar10c.LABELS_FILE).is_file():
        return root
    return fetch_folder(os.environ.get(URL_VARIABLE) or URL, os.environ.get(MD5_VARIABLE) or None, root, FOLDER)
