"""`imagefolder`: any tree of images, one folder per class, at any size (`--image-size N`, default 224).

Layouts:
    root/<class>/*.{png,jpg,jpeg,bmp,webp}                      every image is a test image, no training set
    root/train/<class>/*  and  root/test/<class>/* (or val/)    a training and a test split
The split layout is used when `root/test/` or `root/val/` exists (test preferred). Class index = position
of the class folder name in sorted order (torchvision's ImageFolder); a training split must have the same
class folders. Class names are the folder names. Resize rule: RGB, shorter side to N (PIL bilinear,
antialiased), centre N x N crop, so nothing is stretched and the whole short side is kept. Images are
decoded on first use (`extract --limit` decodes only what it uses).

Corrupted copies for `extract --corrupted-dir` follow ImageNet-C's layout,
`<corruption>/<severity>/<class>/<file>`, matched to the test set by `<class>/<file name>`; copies already
N x N are used as they are, others go through the same resize rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from compute.datasets import folders
from compute.datasets.base import DataError, Dataset, FileImageSet

DEFAULT_SIZE = 224
C_FOLDER = "corrupted"  # an optional folder name under --corrupted-dir; the tree may also sit there directly


def load(root: str | os.PathLike[str] | None = None, download: bool = False,
         image_size: int | None = None) -> Dataset:
    """The image tree under `root` at `image_size` x `image_size` pixels."""
    if download:
        raise DataError("imagefolder has nothing to download: point --data-dir at root/<class>/<images>")
    if root is None:
        raise DataError("imagefolder needs --data-dir DIR holding one folder of images per class")
    size = DEFAULT_SIZE if image_size is None else int(image_size)
    if size < 8:
        raise DataError(f"--image-size must be at least 8 pixels, got {size}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"imagefolder directory {root} does not exist; expected {root}/<class>/<image files>")
    test_folder = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    decode = folders.resize_crop(size, size)
    if test_folder is None:
        classes = folders.class_folders(root)
        test = _split(root, classes, size, decode)
        train = FileImageSet([], [], [], size, decode)
    else:
        classes = folders.class_folders(test_folder)
        test = _split(test_folder, classes, size, decode)
        train_folder = root / "train"
        if train_folder.is_dir() and folders.class_folders(train_folder) != classes:
            extra = sorted(set(folders.class_folders(train_folder)) ^ set(classes))
            raise DataError(f"{train_folder} and {test_folder} must hold the same class folders; "
                            f"in one only: {', '.join(extra[:10])}")
        train = _split(train_folder, classes, size, decode) if train_folder.is_dir() else \
            FileImageSet([], [], [], size, decode)
    if len(classes) < 2:
        raise DataError(f"imagefolder needs at least 2 class folders in {test_folder or root}, found "
                        f"{len(classes)}: {folders.listing(test_folder or root)}")
    if not len(test):
        raise DataError(f"no images (*{', *'.join(folders.SUFFIXES)}) in the class folders of "
                        f"{test_folder or root}")
    return Dataset(name="imagefolder", class_names=tuple(classes), train=train, test=test)


def _split(folder: Path, classes: list[str], size: int, decode) -> FileImageSet:
    paths, labels, keys = folders.tree_samples(folder, classes)
    return FileImageSet(paths, labels, keys, size, decode)


def load_corrupted(root: str | os.PathLike[str], name: str, severity: int, test: FileImageSet) -> FileImageSet:
    """Copies of the test images under `name` at `severity`, in the test order (matched by <class>/<file>)."""
    return folders.load_corrupted_tree(root, name, severity, test, C_FOLDER, "the corrupted image folder")
