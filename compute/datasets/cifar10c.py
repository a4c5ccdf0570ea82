"""CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): the CIFAR-10 test set under 19 corruptions x 5 severities.

Layout as published (Zenodo record 2535967, `CIFAR-10-C.tar`, which unpacks to `CIFAR-10-C/`): one
`<name>.npy` per corruption, uint8 (5N, 32, 32, 3) RGB, severity-major: rows (s-1)*N : s*N are severity
s, each block in test-set order; `labels.npy` holds the 5N labels (the N test labels repeated 5 times).
The published N is 10,000; directories written by `python -m compute corrupt` have the same layout with
fewer samples, so N is read from each file (rows / 5). Files are memory-mapped, so loading one severity
reads one fifth of a file. `root` may be the folder holding the .npy files or the one containing
`CIFAR-10-C/`.

Corruption names are not checked against a list here: a name is a file, and a missing one is reported
with the names that are present (`compute.corruptions.NAMES` is the canonical list).

CIFAR-100-C has the same layout and is read by the same code (`compute.datasets.cifar100c` passes its
folder name and class count to `load_corrupted`).

`download_cifar10c(root)` fetches and unpacks the published archive (`ARCHIVE`, 2.9 GB, pinned in
compute.datasets.download; about twice that must be free while it unpacks, the archive is deleted
afterwards) unless it is already there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from compute.datasets.base import DataError, ImageSet
from compute.datasets.cifar10 import NUM_CLASSES, SIZE
from compute.datasets.download import fetch_folder
from compute.datasets.folders import check_severity
from store.vocabulary import SEVERITIES

ARCHIVE = "CIFAR-10-C.tar"  # Zenodo record 2535967

FOLDER = "CIFAR-10-C"
LABELS_FILE = "labels.npy"


def find_directory(root: str | os.PathLike[str], folder: str = FOLDER) -> Path:
    """The folder holding the .npy files: `root/<folder>` (CIFAR-10-C/) when it exists, else `root`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{folder} directory {root} does not exist; expected <corruption>.npy files and {LABELS_FILE} "
            f"in it or in {root / folder}/ (pass --download to fetch them)"
        )
    return root / folder if (root / folder).is_dir() else root


def available(root: str | os.PathLike[str], folder: str = FOLDER) -> list[str]:
    """The corruption names with a .npy file under `root`, sorted."""
    return sorted(path.stem for path in find_directory(root, folder).glob("*.npy") if path.name != LABELS_FILE)


def load_corrupted(
    root: str | os.PathLike[str], name: str, severity: int, limit: int | None = None, *,
    folder: str = FOLDER, num_classes: int = NUM_CLASSES,
) -> ImageSet:
    """The test images under corruption `name` at `severity` (1..5), with their labels.

    `limit` keeps the first `limit` samples of that severity, so sample ids stay the test-set positions.
    `folder` and `num_classes` describe the family (CIFAR-10-C: 10 classes, CIFAR-100-C: 100).
    """
    check_severity(severity)
    if limit is not None and limit < 0:
        raise DataError(f"limit must be None or >= 0, got {limit}")
    if name in ("", ".", "..", LABELS_FILE.removesuffix(".npy")) or Path(name).name != name:
        raise DataError(f"{name!r} is not a corruption name (the stem of a <name>.npy file)")
    directory = find_directory(root, folder)
    images_path = directory / f"{name}.npy"
    labels_path = directory / LABELS_FILE
    for path in (images_path, labels_path):
        if not path.is_file():
            present = sorted(found.name for found in directory.glob("*.npy"))
            raise DataError(f"missing {path}; .npy files in {directory}: {', '.join(present) or 'none'}")

    images = _open_npy(images_path)
    if images.dtype != np.uint8:
        raise DataError(f"{images_path} has dtype {images.dtype}, expected uint8")
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise DataError(f"{images_path} has shape {images.shape}, expected (rows, {SIZE}, {SIZE}, 3)")
    rows = images.shape[0]
    if rows == 0 or rows % len(SEVERITIES):
        raise DataError(
            f"{images_path} has {rows} rows, expected a positive multiple of 5 (one block per severity)"
        )
    labels = _open_npy(labels_path)
    if labels.shape != (rows,):
        raise DataError(
            f"{labels_path} has shape {labels.shape}, expected ({rows},): one label per row of {images_path}"
        )
    if labels.dtype.kind not in "iu":
        raise DataError(
            f"{labels_path} has dtype {labels.dtype}, expected integer labels (uint8 as published)"
        )

    per_severity = rows // len(SEVERITIES)
    start = (severity - 1) * per_severity
    stop = start + (per_severity if limit is None else min(limit, per_severity))
    selected_labels = np.array(labels[start:stop], dtype=np.int64)
    out_of_range = np.flatnonzero((selected_labels < 0) | (selected_labels >= num_classes))
    if out_of_range.size:
        row = start + int(out_of_range[0])
        raise DataError(f"{labels_path}: row {row} has label {labels[row]}, outside 0..{num_classes - 1}")
    return ImageSet(np.array(images[start:stop]), selected_labels)


def check_directory(root: str | os.PathLike[str], names: Sequence[str], labels: np.ndarray,
                    folder: str = FOLDER) -> None:
    """Check everything extraction will read before it writes anything; DataError naming the file otherwise.

    Every `<name>.npy` and labels.npy must be present and readable, images uint8 (5N, SIZE, SIZE, 3),
    labels (5N,), and each severity block of labels must begin with `labels` (the test labels, in order,
    after any --limit), so a corrupted image is never scored against another image's label.
    """
    test_labels = np.asarray(labels)
    for name in names:
        load_corrupted(root, name, 1, limit=0, folder=folder)  # presence, dtype, shape, one label per image row
    labels_path = find_directory(root, folder) / LABELS_FILE
    stored = _open_npy(labels_path)
    per_severity = len(stored) // len(SEVERITIES)
    if per_severity < len(test_labels):
        raise DataError(f"{labels_path} holds {per_severity} samples per severity, fewer than the "
                        f"{len(test_labels)} test samples to extract (use --limit {per_severity} or another directory)")
    for severity in SEVERITIES:
        start = (severity - 1) * per_severity
        block = np.asarray(stored[start:start + len(test_labels)], dtype=np.int64)
        differs = np.flatnonzero(block != test_labels)
        if differs.size:
            row = int(differs[0])
            raise DataError(f"{labels_path}: severity {severity}, sample {row} has label {block[row]}, the test set "
                            f"has {test_labels[row]}; the images are not the test set in order")


def download_cifar10c(root: str | os.PathLike[str]) -> Path:
    """Fetch CIFAR-10-C into `root/CIFAR-10-C` unless present; return the folder holding the .npy files.

    Present means `root/CIFAR-10-C/` exists or `root` itself holds `labels.npy`; a folder this function
    unpacked is complete, because it is renamed into place only after the whole archive is extracted.
    """
    root = Path(root).expanduser()
    if (root / LABELS_FILE).is_file():
        return root
    return fetch_folder(ARCHIVE, root, FOLDER)


def _open_npy(path: Path) -> np.ndarray:
    """`path` memory-mapped read-only; a truncated or foreign file raises DataError naming it."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"cannot read {path}: truncated or not a .npy array ({error})") from error
    if not isinstance(array, np.ndarray):  # np.load opens a zip of arrays (.npz) whatever its name
        array.close()
        raise DataError(f"cannot read {path}: it is a .npz archive, expected a single .npy array")
    return array
