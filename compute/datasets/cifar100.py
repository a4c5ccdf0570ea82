"""`cifar100`: CIFAR-100 read from the published python version (https://www.cs.toronto.edu/~kriz/cifar.html).

Layout: the folder `cifar-100-python/` holds `train` (50,000 images), `test` (10,000) and `meta`; one file
per split, no numbered batches. Each is a dict pickled by Python 2, read with `encoding="bytes"` and the
same array-only unpickler as CIFAR-10 (a data directory cannot make us run its code): b"data" is uint8
(N, 3072), channel-major RGB rows as in CIFAR-10; b"fine_labels" holds the 100-class labels used here
(b"coarse_labels", the 20 superclasses, is ignored). `meta` holds b"fine_label_names", index = label.
`root` may be the folder containing `cifar-100-python/` or that folder itself.

`download=True` fetches the official archive (`ARCHIVE`, pinned in compute.datasets.download) into `root`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from compute.datasets.base import DataError, Dataset, ImageSet
from compute.datasets.cifar10 import ROW_LENGTH, SIZE, _listing, _read_pickle, _require_key
from compute.datasets.download import fetch_folder

ARCHIVE = "cifar-100-python.tar.gz"

FOLDER = "cifar-100-python"
TRAIN_FILE, TEST_FILE, META_FILE = "train", "test", "meta"
ALL_FILES = (TRAIN_FILE, TEST_FILE, META_FILE)
NUM_CLASSES = 100


def load(root: str | os.PathLike[str] | None = None, download: bool = False) -> Dataset:
    """CIFAR-100 from `root` (fine labels); fetched into `root` first when `download`."""
    if root is None:
        raise DataError(f"cifar100 needs --data-dir DIR containing {FOLDER}/ (with --download: the folder to "
                        "download CIFAR-100 into)")
    root = Path(root).expanduser()
    if (root / FOLDER).is_dir():
        return read_folder(root / FOLDER)
    if any((root / name).is_file() for name in ALL_FILES):
        return read_folder(root)
    if download:
        return read_folder(fetch_folder(ARCHIVE, root, FOLDER))
    found = _listing(root) if root.is_dir() else "the directory does not exist"
    raise DataError(f"no CIFAR-100 files in {root}: expected {root / FOLDER}/ holding {', '.join(ALL_FILES)}; "
                    f"found: {found} (or pass --download to fetch them)")


def read_folder(folder: Path) -> Dataset:
    """Read and check the three files of an unpacked `cifar-100-python` folder."""
    missing = [str(folder / name) for name in ALL_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(f"missing CIFAR-100 file(s): {', '.join(missing)}; found in {folder}: {_listing(folder)}")
    meta = folder / META_FILE
    names = _require_key(_read_pickle(meta), b"fine_label_names", meta)
    if not isinstance(names, list | tuple) or len(names) != NUM_CLASSES \
            or not all(isinstance(name, bytes | str) for name in names):
        raise DataError(f"{meta}: b'fine_label_names' should be a list of {NUM_CLASSES} names, found {names!r:.200}")
    class_names = tuple(name.decode("utf-8") if isinstance(name, bytes) else name for name in names)
    return Dataset(name="cifar100", class_names=class_names, train=read_split(folder / TRAIN_FILE),
                   test=read_split(folder / TEST_FILE))


def read_split(path: Path) -> ImageSet:
    """One split file as HWC images and int64 fine labels, after checking keys, dtype, shape and range."""
    content = _read_pickle(path)
    data = _require_key(content, b"data", path)
    labels = np.asarray(_require_key(content, b"fine_labels", path))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != ROW_LENGTH or data.shape[0] == 0:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' should be uint8 (N, {ROW_LENGTH}) with N > 0, found {found}")
    count = data.shape[0]
    if labels.shape != (count,) or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: b'fine_labels' should be {count} integers (one per row of b'data'), "
                        f"found {labels.dtype} {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        raise DataError(f"{path}: b'fine_labels'[{bad[0]}] = {labels[bad[0]]} is outside 0..{NUM_CLASSES - 1}")
    images = np.ascontiguousarray(data.reshape(count, 3, SIZE, SIZE).transpose(0, 2, 3, 1))
    return ImageSet(images, labels.astype(np.int64))
