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

Tiny-ImageNet-C (`Tiny-ImageNet-C/<corruption>/<severity>/<wnid>/test_<k>.JPEG`, 64x64 JPEG q85) was
made by hendrycks/robustness `make_tinyimagenet_c.py` from `imagenet_val_bbox_crop/<wnid>/test_<k>.JPEG`
(ImageNet validation bounding-box crops, resized with `Resize((64, 64))`), keeping their file names. Those
crops, not `tiny-imagenet-200/val`, are its clean counterpart (issues #39, #59: other photographs). So:
- `clean_dir` (`--clean-dir`, the folder holding `imagenet_val_bbox_crop/` or that folder): the test set is
  the crops of the 200 classes, resized exactly as the generator did (PIL bilinear to 64x64, aspect not
  kept), keyed `<wnid>/test_<k>.JPEG`; each corrupted copy is found by that key: true per-sample pairs.
- without it: the test set is `val/`; each Tiny-ImageNet-C folder is evaluated on its own images against
  their own class: row i of class c takes the i-th file (by name) of `<severity>/<wnid of c>/`. Labels and
  counts match the clean rows, the photographs do not: the images are marked unpaired
  (`FileImageSet.paired`), extraction records that in the store's provenance, and the pages say that a
  clean-vs-corrupted comparison of one sample compares two different photographs.
The published folders hold 200 class folders each; one with more is refused: the frost/ of the original
Zenodo record 2536630 holds 1000 (issue #60, another run's output). The download is the fixed record
8206060: `Tiny-ImageNet-C.tar` (15 corruptions) and `Tiny-ImageNet-C-extra.tar` (speckle_noise,
gaussian_blur, spatter, saturate), each fetched when a corruption it holds is asked for.

Downloads (`--download`) are pinned in compute.datasets.download (`ARCHIVE`, `C_ARCHIVES`).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from compute.datasets import folders
from compute.datasets.base import DataError, Dataset, FileImageSet
from compute.datasets.download import fetch_corruption, fetch_folder
from compute.datasets.imagenet import C_ARCHIVES as IMAGENET_C_ARCHIVES

ARCHIVE = "tiny-imagenet-200.zip"
# Zenodo record 8206060's tars and the corruption folders each holds.
C_ARCHIVES = {
    "Tiny-ImageNet-C.tar": tuple(name for tar, names in IMAGENET_C_ARCHIVES.items() if tar != "extra.tar"
                                 for name in names),
    "Tiny-ImageNet-C-extra.tar": IMAGENET_C_ARCHIVES["extra.tar"],
}

FOLDER = "tiny-imagenet-200"
C_FOLDER = "Tiny-ImageNet-C"
CLEAN_FOLDER = "imagenet_val_bbox_crop"
SIZE = 64
NUM_CLASSES = 200


def load(root: str | os.PathLike[str] | None = None, download: bool = False,
         clean_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Tiny-ImageNet-200 from `root` (train and val, undecoded until used); with `clean_dir`, the test set is
    Tiny-ImageNet-C's clean counterpart, the crops of `imagenet_val_bbox_crop/`."""
    if root is None:
        raise DataError(f"tinyimagenet needs --data-dir DIR containing {FOLDER}/ (with --download: the folder "
                        "to download it into)")
    root = Path(root).expanduser()
    if (root / FOLDER).is_dir():
        folder = root / FOLDER
    elif (root / "wnids.txt").is_file():
        folder = root
    elif download:
        folder = fetch_folder(ARCHIVE, root, FOLDER)
    else:
        raise DataError(f"no Tiny-ImageNet in {root}: expected {root / FOLDER}/ holding wnids.txt, words.txt, "
                        f"train/ and val/; found: {folders.listing(root)} (or pass --download to fetch it)")
    return read_folder(folder, None if clean_dir is None else Path(clean_dir).expanduser())


def read_folder(folder: Path, clean_dir: Path | None = None) -> Dataset:
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
                   test=read_val(folder, index, decode) if clean_dir is None else read_crops(clean_dir, wnids))


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


def read_crops(clean_dir: Path, wnids: list[str]) -> FileImageSet:
    """`imagenet_val_bbox_crop/<wnid>/test_<k>.JPEG` of every class, resized to 64x64 as the generator did
    (`Resize((64, 64))`: PIL bilinear, aspect not kept), in ImageFolder's order, keyed `<wnid>/<file>`."""
    crops = clean_dir / CLEAN_FOLDER if (clean_dir / CLEAN_FOLDER).is_dir() else clean_dir
    if not crops.is_dir():
        raise DataError(f"--clean-dir {clean_dir} does not exist; expected {CLEAN_FOLDER}/<wnid>/test_<k>.JPEG in "
                        "it (the clean images Tiny-ImageNet-C was made from)")
    missing = sorted(set(wnids) - set(folders.class_folders(crops)))
    if missing:
        raise DataError(f"{crops} has no folder for {len(missing)} of the {len(wnids)} Tiny-ImageNet classes "
                        f"(e.g. {', '.join(missing[:3])}); expected {CLEAN_FOLDER}/<wnid>/test_<k>.JPEG; found: "
                        f"{folders.listing(crops)}")
    paths, labels, keys = folders.tree_samples(crops, wnids)
    if not paths:
        raise DataError(f"no images in the class folders of {crops}")
    return FileImageSet(paths, labels, keys, SIZE, folders.exact(SIZE))


def pairs_by_name(test: FileImageSet) -> bool:
    """Whether `test` is the crops (`test_<k>.JPEG`: Tiny-ImageNet-C holds their copies under the same names)
    rather than `tiny-imagenet-200/val` (`val_<k>.JPEG`, other photographs)."""
    return not any(key.rpartition("/")[2].startswith("val_") for key in test.keys)


def load_corrupted(root: str | os.PathLike[str], name: str, severity: int, test: FileImageSet) -> FileImageSet:
    """Tiny-ImageNet-C images under `name` at `severity` for `test`'s rows: the copies of the crops found by
    `<wnid>/<file>`, or, for the val set, the folder's own images of each row's class (unpaired)."""
    directory = folders.severity_folder(root, name, severity, C_FOLDER, "Tiny-ImageNet-C")
    classes = folders.class_folders(directory)
    if len(classes) > NUM_CLASSES:
        raise DataError(f"{directory} holds {len(classes)} class folders; Tiny-ImageNet-C has {NUM_CLASSES}: this is "
                        "the defective frost/ of Zenodo record 2536630 (hendrycks/robustness issue #60, another "
                        f"run's images); use the fixed copy of record 8206060 (--download fetches it) or leave "
                        f"{name} out")
    if pairs_by_name(test):
        return folders.copies_by_key(directory, test)
    listed: dict[str, list[Path]] = {}
    taken: dict[str, int] = {}
    paths, keys = [], []
    for key in test.keys:
        wnid = key.split("/")[0]
        if wnid not in listed:
            listed[wnid] = sorted(path for path in (directory / wnid).glob("*") if folders.is_image(path))
        position = taken[wnid] = taken.get(wnid, -1) + 1
        if position >= len(listed[wnid]):
            raise DataError(f"{directory / wnid} holds {len(listed[wnid])} images; the clean test set has at least "
                            f"{position + 1} of class {wnid} (each Tiny-ImageNet-C class folder holds 50)")
        paths.append(listed[wnid][position])
        keys.append(f"{wnid}/{paths[-1].name}")
    return FileImageSet(paths, test.labels.copy(), keys, test.size,
                        partial(folders.decode_copy, size=test.size, decode=test.decode), paired=False)


def download_corrupted(root: str | os.PathLike[str], corruption: str) -> Path:
    """Fetch and unpack the record-8206060 tar holding `corruption` into `root/Tiny-ImageNet-C` unless its
    folder is there (there, or in `root` itself); return the folder holding the corruption folders."""
    root = Path(root).expanduser()
    base = root if (root / corruption).is_dir() else root / C_FOLDER
    return fetch_corruption(base, corruption, C_ARCHIVES, "Tiny-ImageNet-C")
