"""`imagenet`: the ImageNet (ILSVRC2012) validation set, evaluation only, and ImageNet-C.

Layout: a validation folder sorted into class folders, `val/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG` (1000
folders, 50 images each; the flat archive from image-net.org must be sorted into class folders first,
e.g. with the devkit's labels). `root` may be that folder or hold `val/`. All 1000 wnid folders must be
there: the class index is the position in the sorted wnid list (n01440764 -> 0 ... n15075141 -> 999, the
torchvision / RobustBench index), so a missing folder would shift every later label. Class names come
from `LOC_synset_mapping.txt` (`wnid names`) in the validation folder or up to four folders above it (the
Kaggle copy keeps it beside `ILSVRC/`, whose `ILSVRC/Data/CLS-LOC/val/` is the validation folder), else
the wnids. Each image: RGB, shorter side resized to 256 (PIL bilinear), centre 224x224 crop.

There is no training split (train on ImageNet elsewhere; bring the model with `extract --model`).

Memory: images are decoded on first use and only as many as asked for (`extract --limit N` decodes N);
the full 50,000 images are 7.5 GB as uint8, held in memory (and on the device) during extraction. Use
`--limit` or the 5,000-image subset when that is too much.

`--subset FILE`: the samples listed in FILE, one `wnid/ILSVRC2012_val_XXXXXXXX.JPEG` per line, in the
file's order, labels from the sorted wnid index, as in RobustBench; the same ids select the ImageNet-C
images. `--subset robustbench` is RobustBench's fixed 5,000-image list, shipped with prunescope
(`robustbench/imagenet_test_image_ids.txt` here, source and license in NOTICE.md beside it) and checked
against its sha256 before use.

ImageNet-C (`<corruption>/<severity>/<wnid>/<original val file name>`, 224x224 JPEG, from Zenodo record
2235448's five tars extracted into one folder) is matched to the test set by `<wnid>/<file name>`.
Its images are used as they are (no second resize). `download_corrupted(root, corruption)` fetches the
one Zenodo tar holding that corruption (noise, blur, weather, digital or extra; 7 to 21 GB each) and
unpacks its corruption folders into `root`, unless the corruption's folder is there. The tars' md5s are
pinned in compute.datasets.download (no source gives their exact byte sizes). That each tar holds its
corruption folders at its top level follows AugMix's instructions (extract all tars into one folder) and
two loaders that read the tars; it was not checked against a listing of the real files.
"""

from __future__ import annotations

import os
from pathlib import Path

from compute.datasets import folders
from compute.datasets.base import DataError, Dataset, FileImageSet
from compute.datasets.download import fetch_corruption
from store.digests import file_digest

NUM_CLASSES = 1000
RESIZE, SIZE = 256, 224
C_FOLDER = "ImageNet-C"
NAMES_FILE = "LOC_synset_mapping.txt"
ROBUSTBENCH = "robustbench"  # --subset robustbench
ROBUSTBENCH_FILE = Path(__file__).parent / "robustbench" / "imagenet_test_image_ids.txt"
ROBUSTBENCH_SHA256 = "d4121626d07722a0126c35b1563042e46a546f1a05ce705f2cdc635896d58574"
# Zenodo record 2235448's tars and the corruption folders each holds (the tars' grouping, not the paper's).
C_ARCHIVES = {
    "noise.tar": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur.tar": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather.tar": ("snow", "frost", "fog", "brightness"),
    "digital.tar": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra.tar": ("speckle_noise", "gaussian_blur", "spatter", "saturate"),
}


def is_wnid(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def load(root: str | os.PathLike[str] | None = None, download: bool = False,
         subset: str | os.PathLike[str] | None = None) -> Dataset:
    """The validation set under `root` (all of it, or the samples listed in `subset`); `download` only
    matters for ImageNet-C (`download_corrupted`): the validation set cannot be downloaded."""
    if root is None:
        raise DataError("imagenet needs --data-dir DIR: the validation folder with one <wnid>/ folder per class")
    root = Path(root).expanduser()
    folder = root / "val" if (root / "val").is_dir() else root
    if not folder.is_dir():
        raise DataError(f"imagenet directory {root} does not exist; expected {root}/<wnid>/*.JPEG or "
                        f"{root}/val/<wnid>/*.JPEG (1000 class folders)"
                        + ("; ImageNet itself cannot be downloaded (image-net.org needs a login)" if download else ""))
    wnids = [name for name in folders.class_folders(folder) if is_wnid(name)]
    if len(wnids) != NUM_CLASSES:
        raise DataError(f"{folder} has {len(wnids)} class folders named like n01440764, expected {NUM_CLASSES} "
                        f"(<wnid>/ILSVRC2012_val_*.JPEG; a flat folder must be sorted into class folders "
                        f"first); found: {folders.listing(folder)}")
    decode = folders.resize_crop(RESIZE, SIZE)
    if subset is None:
        paths, labels, keys = folders.tree_samples(folder, wnids)
    else:
        paths, labels, keys = read_subset(subset_file(subset), folder, wnids)
    if not paths:
        raise DataError(f"no images (*{', *'.join(folders.SUFFIXES)}) in the class folders of {folder}")
    empty = FileImageSet([], [], [], SIZE, decode)
    return Dataset(name="imagenet", class_names=class_names(folder, wnids), train=empty,
                   test=FileImageSet(paths, labels, keys, SIZE, decode))


def subset_file(subset: str | os.PathLike[str]) -> Path:
    """The id list `--subset` names: a file, or `robustbench` for the shipped list (its sha256 checked)."""
    if str(subset) != ROBUSTBENCH:
        return Path(subset).expanduser()
    found = file_digest(ROBUSTBENCH_FILE)
    if found != ROBUSTBENCH_SHA256:
        raise DataError(f"{ROBUSTBENCH_FILE} has sha256 {found}, expected {ROBUSTBENCH_SHA256} (RobustBench's list "
                        "as shipped); restore it from the repository")
    return ROBUSTBENCH_FILE


def read_subset(subset: Path, folder: Path, wnids: list[str]):
    """(paths, labels, keys) of the `wnid/file` lines of `subset`, in the file's order."""
    if not subset.is_file():
        raise DataError(f"subset file {subset} does not exist (expected lines like "
                        "n01440764/ILSVRC2012_val_00000293.JPEG)")
    index = {wnid: label for label, wnid in enumerate(wnids)}
    paths, labels, keys = [], [], []
    for number, line in enumerate(subset.read_text().splitlines(), start=1):
        key = line.strip()
        if not key:
            continue
        wnid, _, name = key.partition("/")
        if wnid not in index or not name or "/" in name:
            raise DataError(f"{subset} line {number}: expected <wnid>/<file name> with one of the 1000 wnids, "
                            f"found {key!r:.120}")
        path = folder / wnid / name
        if not path.is_file():
            raise DataError(f"{subset} line {number} names {path}, which does not exist")
        paths.append(path)
        labels.append(index[wnid])
        keys.append(key)
    return paths, labels, keys


def class_names(folder: Path, wnids: list[str]) -> tuple[str, ...]:
    """Names from LOC_synset_mapping.txt (`wnid first, second, ...`) in the validation folder `folder` or up
    to four folders above it (Kaggle: `<root>/LOC_synset_mapping.txt`, `<root>/ILSVRC/Data/CLS-LOC/val/`),
    the nearest first; first synonym; else the wnids."""
    names: dict[str, str] = {}
    for candidate in (directory / NAMES_FILE for directory in (folder, *folder.parents[:4])):
        if candidate.is_file():
            for line in candidate.read_text(encoding="utf-8", errors="replace").splitlines():
                wnid, _, text = line.strip().partition(" ")
                names[wnid] = text.split(",")[0].strip()
            break
    return tuple(names.get(wnid) or wnid for wnid in wnids)


def load_corrupted(root: str | os.PathLike[str], name: str, severity: int, test: FileImageSet) -> FileImageSet:
    """ImageNet-C images under `name` at `severity`, in `test`'s order (matched by <wnid>/<file>)."""
    return folders.load_corrupted_tree(root, name, severity, test, C_FOLDER, "ImageNet-C")


def download_corrupted(root: str | os.PathLike[str], corruption: str) -> Path:
    """Fetch and unpack the ImageNet-C tar holding `corruption` into `root` unless its folder is there."""
    root = Path(root).expanduser()
    base = root / C_FOLDER if (root / C_FOLDER).is_dir() else root
    return fetch_corruption(base, corruption, C_ARCHIVES, "ImageNet-C")
