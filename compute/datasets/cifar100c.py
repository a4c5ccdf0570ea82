"""CIFAR-100-C: the CIFAR-100 test set under 19 corruptions x 5 severities (Zenodo record 3555552).

Same layout as CIFAR-10-C (`CIFAR-100-C/<corruption>.npy`, uint8 (50000, 32, 32, 3), severity-major
blocks in test-set order, `labels.npy` with the fine labels 0..99), so it is read by the one CIFAR-C
loader, `compute.datasets.cifar10c.load_corrupted`, with this folder name and class count.

`download(root)` fetches `CIFAR-100-C.tar` (pinned in compute.datasets.download) unless present.
"""

from __future__ import annotations

import os
from pathlib import Path

from compute.datasets import cifar10c
from compute.datasets.base import ImageSet
from compute.datasets.download import fetch_folder

ARCHIVE = "CIFAR-100-C.tar"  # Zenodo record 3555552
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
    return fetch_folder(ARCHIVE, root, FOLDER)
