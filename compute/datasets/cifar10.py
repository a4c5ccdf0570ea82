"""`cifar10`: CIFAR-10 read from the published python version (https://www.cs.toronto.edu/~kriz/cifar.html).

Layout: the folder `cifar-10-batches-py/` holds `data_batch_1` .. `data_batch_5` (the training set),
`test_batch` and `batches.meta`. Each batch is a dict pickled by Python 2, so it is read with
`encoding="bytes"`: b"data" is uint8 (N, 3072), one row per image, channel-major RGB (the 1024 red
values row by row, then green, then blue); b"labels" is a list of N class indices. `batches.meta` holds
b"label_names". `root` may be the folder containing `cifar-10-batches-py/` or that folder itself.

Every file is checked (present, readable, keys, dtypes, shapes, label range) and a problem raises
`DataError` naming the file, so a bad directory fails before any model runs on it.

`download=True` fetches the official archive (`ARCHIVE`, pinned in compute.datasets.download) into
`root` and unpacks it there, unless the batches are already present.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from compute.datasets.base import DataError, Dataset, ImageSet
from compute.datasets.download import fetch_folder

ARCHIVE = "cifar-10-python.tar.gz"

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ALL_FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
NUM_CLASSES = 10
SIZE = 32
ROW_LENGTH = 3 * SIZE * SIZE


def load(root: str | os.PathLike[str] | None = None, download: bool = False) -> Dataset:
    """CIFAR-10 from `root` (50,000 train, 10,000 test images); fetched into `root` first when `download`."""
    if root is None:
        if download:
            raise DataError("cifar10 --download needs --data-dir DIR: the folder to download CIFAR-10 into")
        raise DataError("cifar10 needs --data-dir DIR containing cifar-10-batches-py/ (or pass --download)")
    root = Path(root).expanduser()
    folder = find_batches(root)
    if folder is not None:
        try:
            return read_batches(folder)
        except DataError as error:
            if download:
                raise DataError(f"{error} (delete {folder} to download CIFAR-10 again)") from error
            raise
    if not download:
        if not root.is_dir():
            raise DataError(
                f"cifar10 data directory {root} does not exist or is not a directory; expected "
                f"{root / FOLDER}/ with {', '.join(ALL_FILES)} (or pass --download to fetch it there)"
            )
        raise DataError(
            f"no CIFAR-10 batches in {root}: expected {root / FOLDER}/ or the files {', '.join(ALL_FILES)} "
            f"directly in it; found: {_listing(root)} (or pass --download to fetch them)"
        )
    return read_batches(fetch_folder(ARCHIVE, root, FOLDER))


def find_batches(root: Path) -> Path | None:
    """The folder holding the batch files: `root/cifar-10-batches-py`, or `root` if it holds any of them."""
    if (root / FOLDER).is_dir():
        return root / FOLDER
    if any((root / name).exists() for name in ALL_FILES):
        return root
    return None


def read_batches(folder: Path) -> Dataset:
    """Read and check every file of an unpacked `cifar-10-batches-py` folder."""
    missing = [folder / name for name in ALL_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"missing CIFAR-10 file(s): {', '.join(map(str, missing))}; found in {folder}: {_listing(folder)}"
        )
    class_names = read_class_names(folder / META_FILE)
    train_parts = [read_batch(folder / name) for name in TRAIN_FILES]
    train = ImageSet(
        np.concatenate([part.images for part in train_parts]),
        np.concatenate([part.labels for part in train_parts]),
    )
    return Dataset(name="cifar10", class_names=class_names, train=train, test=read_batch(folder / TEST_FILE))


def read_class_names(path: Path) -> tuple[str, ...]:
    """The ten class names from `batches.meta` (b"label_names", bytes or str)."""
    content = _read_pickle(path)
    names = _require_key(content, b"label_names", path)
    if (
        not isinstance(names, list | tuple)
        or len(names) != NUM_CLASSES
        or not all(isinstance(name, bytes | str) for name in names)
    ):
        raise DataError(
            f"{path}: b'label_names' should be a list of {NUM_CLASSES} names, found {names!r:.200}"
        )
    return tuple(name.decode("utf-8") if isinstance(name, bytes) else name for name in names)


def read_batch(path: Path) -> ImageSet:
    """One batch file as HWC images and int64 labels, after checking keys, dtype, shape and label range."""
    content = _read_pickle(path)
    data = _require_key(content, b"data", path)
    raw_labels = _require_key(content, b"labels", path)
    if not isinstance(data, np.ndarray):
        raise DataError(
            f"{path}: b'data' should be a uint8 numpy array (N, {ROW_LENGTH}), found {type(data).__name__}"
        )
    if data.dtype != np.uint8:
        raise DataError(f"{path}: b'data' has dtype {data.dtype}, expected uint8")
    if data.ndim != 2 or data.shape[1] != ROW_LENGTH or data.shape[0] == 0:
        raise DataError(f"{path}: b'data' has shape {data.shape}, expected (N, {ROW_LENGTH}) with N > 0")
    count = data.shape[0]
    labels = np.asarray(raw_labels)
    if labels.shape != (count,):
        raise DataError(
            f"{path}: b'labels' has shape {labels.shape}, expected ({count},), one per row of b'data'"
        )
    if labels.dtype.kind not in "iu":
        raise DataError(f"{path}: b'labels' should be integers, found dtype {labels.dtype}")
    out_of_range = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if out_of_range.size:
        first = int(out_of_range[0])
        raise DataError(
            f"{path}: b'labels'[{first}] = {labels[first]} is outside 0..{NUM_CLASSES - 1} "
            f"({out_of_range.size} label(s) out of range)"
        )
    images = np.ascontiguousarray(data.reshape(count, 3, SIZE, SIZE).transpose(0, 2, 3, 1))
    return ImageSet(images, labels.astype(np.int64))


# The only globals a CIFAR-10 batch needs: numpy's array reconstruction (numpy 1 and 2 module names).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a data directory cannot make us run its code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict[Any, Any]:
    """The dict pickled in `path`; a truncated or foreign file raises DataError naming it."""
    try:
        with path.open("rb") as file:
            content = _ArrayOnlyUnpickler(file, encoding="bytes").load()
    # A damaged pickle can fail with almost any exception (EOFError, UnpicklingError, ValueError from
    # numpy rebuilding a short array, ...); all of them mean the same thing for the user.
    except Exception as error:
        raise DataError(
            f"cannot read {path}: truncated or not a CIFAR-10 pickle ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(content, dict):
        raise DataError(f"{path} should hold a pickled dict, holds {type(content).__name__}")
    return content


def _require_key(content: dict[Any, Any], key: bytes, path: Path) -> Any:
    """content[key], or a DataError naming the file, the key and the keys that are there."""
    if key not in content:
        raise DataError(f"{path} has no key {key!r}; keys found: {sorted(map(repr, content))}")
    return content[key]


def _listing(folder: Path) -> str:
    """The names in `folder`, sorted, for error messages."""
    names = sorted(path.name for path in folder.iterdir())
    return ", ".join(names) if names else "nothing"
