"""`tinyimagenet`: Tiny-ImageNet-200 (64x64, 200 classes) and Tiny-ImageNet-C.

Layout (`tiny-imagenet-200/`, the unpacked `tiny-imagenet-200.zip`):
    wnids.txt                              the 200 WordNet ids, NOT sorted
    words.txt                              `wnid<TAB>names` for many synsets (display names only)
    train/<wnid>/images/<wnid>_<k>.JPEG    500 per class
    val/images/val_<k>.JPEG                10,000, one flat folder
    val/val_annotations.txt                `file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1`
Class index = position of the wnid in SORTED order (what ImageFolder gives on train/ and on every
Tiny-ImageNet-C folder; enumerating wnids.txt would give another permutation). Class names are the first
synonym in words.txt. The test set is val/, labelled by val_annotations.txt, ordered class by class and by
file name (ImageFolder's order); sample keys are `<wnid>/<file>`. `root` may hold `tiny-imagenet-200/`
or be it. Images are decoded on first use, converted to RGB (a few are greyscale).

Tiny-ImageNet-C (`Tiny-ImageNet-C/<corruption>/<severity>/<wnid>/<file>.JPEG`, 64x64 JPEG q85) is matched
to the test set by `<wnid>/<file name>`, never by position. Its maintainers say the corrupted images were
regenerated from ImageNet validation crops, so even a same-named file need not show the same photo as the
Tiny-ImageNet val image (hendrycks/robustness issues #39, #59): accuracies and class-level geometry are
comparable, per-sample clean-vs-corrupted pairs are not. A test image with no copy is an error naming it.
The Zenodo copy's frost/ has 1000 class folders (issue #60); matching by wnid reads only the 200 needed.

Downloads (`--download`): the archive from Stanford (md5 as used by common Tiny-ImageNet loaders, not
from the reference sources; override it if your mirror differs) and `Tiny-ImageNet-C.tar` from Zenodo
(not checksummed unless PRUNESCOPE_TINYIMAGENETC_MD5 is set).
    PRUNESCOPE_TINYIMAGENET_URL / _MD5, PRUNESCOPE_TINYIMAGENETC_URL / _MD5
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from compute.datasets import folders
from compute.datasets.base import DataError, Dataset, FileImageSet
from compute.datasets.download import fetch_folder

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
URL_VARIABLE, MD5_VARIABLE = "PRUNESCOPE_TINYIMAGENET_URL", "PRUNESCOPE_TINYIMAGENET_MD5"
C_URL = "https://zenodo.org/records/2536630/files/Tiny-ImageNet-C.tar"
C_URL_VARIABLE, C_MD5_VARIABLE = "PRUNESCOPE_TINYIMAGENETC_URL", "PRUNESCOPE_TINYIMAGENETC_MD5"

FOLDER = "tiny-imagenet-200"
C_FOLDER = "Tiny-ImageNet-C"
SIZE = 64


def load(root: str | os.PathLike[str] | None = None, download: bool = False) -> Dataset:
    """Tiny-ImageNet-200 from `root` (train and val, undecoded until used)."""
    if root is None:
        raise DataError(f"tinyimagenet needs --data-dir DIR containing {FOLDER}/ (with --download: the folder "
                        "to download it into)")
    root = Path(root).expanduser()
    if (root / FOLDER).is_dir():
        folder = root / FOLDER
    elif (root / "wnids.txt").is_file():
        folder = root
    elif download:
        folder = fetch_folder(os.environ.get(URL_VARIABLE) or URL, os.environ.get(MD5_VARIABLE) or MD5, root,
                              FOLDER)
    else:
        raise DataError(f"no Tiny-ImageNet in {root}: expected {root / FOLDER}/ holding wnids.txt, words.txt, "
                        f"train/ and val/; found: {folders.listing(root)} (or pass --download to fetch it)")
    return read_folder(folder)


def read_folder(folder: Path) -> Dataset:
    wnids_file = folder / "wnids.txt"
    if not wnids_file.is_file():
        raise DataError(f"missing {wnids_file} (the class list); found in {folder}: {folders.listing(folder)}")
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    if not wnids:
        raise DataError(f"{wnids_file} lists no classes")
    index = {wnid: label for label, wnid in enumerate(wnids)}
    decode = folders.exact(SIZE)

    train_paths, train_labels, train_keys = [], [], []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        for path in sorted(images.iterdir()) if images.is_dir() else ():
            if folders.is_image(path):
                train_paths.append(path)
                train_labels.append(index[wnid])
                train_keys.append(f"{wnid}/{path.name}")
    train = FileImageSet(train_paths, np.asarray(train_labels, np.int64), train_keys, SIZE, decode)
    return Dataset(name="tinyimagenet", class_names=class_names(folder, wnids), train=train,
                   test=read_val(folder, index, decode))


def read_val(folder: Path, index: dict[str, int], decode) -> FileImageSet:
    """val/images labelled by val/val_annotations.txt, ordered by (class index, file name)."""
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DataError(f"missing {annotations} (the validation labels); found in {folder / 'val'}: "
                        f"{folders.listing(folder / 'val')}")
    samples = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"{annotations} line {number}: expected 'file<TAB>wnid<TAB>box' with a wnid of "
                            f"wnids.txt, found {line!r:.120}")
        path = folder / "val" / "images" / fields[0]
        if not path.is_file():
            raise DataError(f"{annotations} line {number} names {path}, which does not exist")
        samples.append((index[fields[1]], fields[0], fields[1], path))
    if not samples:
        raise DataError(f"{annotations} lists no images")
    samples.sort()
    return FileImageSet([s[3] for s in samples], np.asarray([s[0] for s in samples], np.int64),
                        [f"{s[2]}/{s[1]}" for s in samples], SIZE, decode)


def class_names(folder: Path, wnids: list[str]) -> tuple[str, ...]:
    """The first synonym of each wnid in words.txt (the wnid itself when the file or the line is missing)."""
    words = folder / "words.txt"
    names: dict[str, str] = {}
    if words.is_file():
        for line in words.read_text(encoding="utf-8", errors="replace").splitlines():
            wnid, _, text = line.partition("\t")
            names[wnid.strip()] = text.split(",")[0].strip()
    return tuple(names.get(wnid) or wnid for wnid in wnids)


def load_corrupted(root: str | os.PathLike[str], name: str, severity: int, test: FileImageSet) -> FileImageSet:
    """Tiny-ImageNet-C images under `name` at `severity`, in `test`'s order (matched by <wnid>/<file>)."""
    return folders.load_corrupted_tree(root, name, severity, test, C_FOLDER, "Tiny-ImageNet-C")


def download_corrupted(root: str | os.PathLike[str]) -> Path:
    """Fetch Tiny-ImageNet-C into `root/Tiny-ImageNet-C` unless present (there, or as `root` itself)."""
    root = Path(root).expanduser()
    if root.is_dir() and any(path.is_dir() for path in root.glob("*/1")):
        return root
    return fetch_folder(os.environ.get(C_URL_VARIABLE) or C_URL, os.environ.get(C_MD5_VARIABLE) or None, root,
                        C_FOLDER)
