"""What every folder-of-images dataset shares: decoding with a resize rule, `<class>/<file>` listings,
and corrupted copies in a `<corruption>/<severity>/<class>/<file>` tree matched to the clean test set.

Resize rules (both PIL bilinear with antialiasing, through torchvision's functional transforms, so they
are the published pipelines pixel for pixel):
    exact(size)            the image resized to size x size (aspect ratio not kept); a no-op for files
                           already that size (Tiny-ImageNet's 64x64 JPEGs)
    resize_crop(r, c)      shorter side to r (the longer one scaled and truncated to int), then the
                           centre c x c crop: ImageNet's Resize(256) + CenterCrop(224); an image folder
                           at --image-size N uses r = c = N (the whole short side is kept)
Images are converted to RGB first (grey and palette files become three equal channels).

Corrupted copies are matched by key (`<class>/<file>`), never by position: a listing that misses or
adds one file would otherwise shift every later label. A copy already at the dataset's size is used as
it is (ImageNet-C's 224x224 JPEGs are not resized again); any other size goes through the clean rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from compute.datasets.base import DataError, FileImageSet
from store import vocabulary

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _open_rgb(path: Path):
    """The file decoded as RGB, once its header's size is within PIL's MAX_IMAGE_PIXELS (a 400-megapixel
    PNG is refused from its first bytes, never decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > Image.MAX_IMAGE_PIXELS:
                raise DataError(f"image {path} is {image.width} x {image.height} pixels, more than "
                                f"{Image.MAX_IMAGE_PIXELS} (PIL's MAX_IMAGE_PIXELS); refusing to decode it")
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}") from error


def _decode_exact(size: int, path: Path) -> np.ndarray:
    image = _open_rgb(path)
    if image.size != (size, size):
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        image = TF.resize(image, [size, size], InterpolationMode.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _decode_resize_crop(resize: int, crop: int, path: Path) -> np.ndarray:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    image = TF.resize(_open_rgb(path), resize, InterpolationMode.BILINEAR)
    return np.asarray(TF.center_crop(image, [crop, crop]), dtype=np.uint8)


def exact(size: int) -> Callable[[Path], np.ndarray]:
    return partial(_decode_exact, size)


def resize_crop(resize: int, crop: int) -> Callable[[Path], np.ndarray]:
    return partial(_decode_resize_crop, resize, crop)


RULES: dict[str, Callable[..., Callable[[Path], np.ndarray]]] = {"exact": exact, "resize_crop": resize_crop}
_RULE_NAMES = {_decode_exact: "exact", _decode_resize_crop: "resize_crop"}


def rule_spec(decode: Callable[[Path], np.ndarray]) -> list[Any] | None:
    """A resize rule as JSON (["resize_crop", 256, 224]), None for a decoder that is not one of RULES."""
    name = _RULE_NAMES.get(getattr(decode, "func", None))
    return [name, *decode.args] if name else None


def rule(spec: Sequence[Any]) -> Callable[[Path], np.ndarray]:
    """The resize rule `rule_spec` wrote."""
    if not spec or spec[0] not in RULES:
        raise DataError(f"unknown resize rule {spec!r}; known: {', '.join(RULES)}")
    return RULES[spec[0]](*spec[1:])


def decode_copy(path: Path, size: int, decode: Callable[[Path], np.ndarray]) -> np.ndarray:
    """A corrupted copy as extraction reads it: as it is when already size x size, else through `decode`."""
    image = np.asarray(_open_rgb(path), dtype=np.uint8)
    return image if image.shape[:2] == (size, size) else decode(path)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and path.is_file()


def class_folders(folder: Path) -> list[str]:
    """The sorted names of the subfolders of `folder` (hidden ones skipped): the class index order."""
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def listing(folder: Path, limit: int = 12) -> str:
    """Up to `limit` names in `folder`, sorted, for error messages."""
    if not folder.is_dir():
        return "the directory does not exist"
    names = sorted(entry.name for entry in folder.iterdir())
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return shown or "nothing"


def tree_samples(folder: Path, classes: Sequence[str]) -> tuple[list[Path], np.ndarray, list[str]]:
    """Images of `folder/<class>/*` for each class: paths, labels (position in `classes`), keys.

    Order: class by class in `classes` order, files sorted by name within a class (torchvision's ImageFolder).
    """
    paths: list[Path] = []
    labels: list[int] = []
    keys: list[str] = []
    for label, name in enumerate(classes):
        directory = folder / name
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if is_image(path):
                paths.append(path)
                labels.append(label)
                keys.append(f"{name}/{path.name}")
    return paths, np.asarray(labels, dtype=np.int64), keys


def check_severity(severity: int) -> None:
    if not vocabulary.is_severity(severity):
        raise DataError(f"severity must be an integer in 1..5, got {severity!r}")


def find_corrupted_root(root: str | os.PathLike[str], folder: str, family: str) -> Path:
    """`root/<folder>` (e.g. Tiny-ImageNet-C/) when it exists, else `root`; an absent root is an error."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{family} directory {root} does not exist; expected <corruption>/<severity>/<class>/"
                        f"<file> in it or in {root / folder}/")
    return root / folder if (root / folder).is_dir() else root


def severity_folder(root: str | os.PathLike[str], name: str, severity: int, folder: str, family: str) -> Path:
    """`<root or root/folder>/<name>/<severity>`, which must exist; DataError naming what was found otherwise."""
    check_severity(severity)
    if name in ("", ".", "..") or Path(name).name != name:
        raise DataError(f"{name!r} is not a corruption name (a folder of {family})")
    base = find_corrupted_root(root, folder, family)
    directory = base / name / str(severity)
    if not directory.is_dir():
        raise DataError(f"missing {directory}: {family} holds <corruption>/<severity>/<class>/<file>; "
                        f"found in {base}: {listing(base)}")
    return directory


def load_corrupted_tree(root: str | os.PathLike[str], name: str, severity: int, test: FileImageSet,
                        folder: str, family: str) -> FileImageSet:
    """The copies of `test`'s images under `name` at `severity`, in `test`'s order, matched by key."""
    return copies_by_key(severity_folder(root, name, severity, folder, family), test)


def copies_by_key(directory: Path, test: FileImageSet) -> FileImageSet:
    """The copies of `test`'s images in `directory` (one severity of a tree), in `test`'s order, by key.

    Every copy is found before this returns (a missing one raises DataError naming it); they are decoded
    on first use of `images`, so checking a whole corrupted tree before extraction costs a listing."""
    paths = [directory / key for key in test.keys]
    missing = [key for key, path in zip(test.keys, paths, strict=True) if not path.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(test)} test images have no copy in {directory} (matched by "
            f"<class>/<file name>, not by position), e.g. {', '.join(missing[:3])}; found in "
            f"{directory / missing[0].split('/')[0]}: {listing(directory / missing[0].split('/')[0], 5)}")
    return FileImageSet(paths, test.labels.copy(), test.keys, test.size,
                        partial(decode_copy, size=test.size, decode=test.decode))
