"""The one shape every dataset takes: uint8 HWC RGB images in memory, integer labels, class names."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data directory or file is missing, truncated or not in the expected format."""


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 (N, H, W, 3) RGB, labels as int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise DataError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise DataError(f"labels must have shape ({len(self.images)},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def subset(self, count: int | None) -> ImageSet:
        """The first `count` samples (all when None); sample ids stay the row positions."""
        if count is None or count >= len(self):
            return self
        return ImageSet(self.images[:count], self.labels[:count])


class FileImageSet:
    """Images kept as files and decoded on first use of `images`, so loading a folder dataset costs a
    directory listing, and `subset(n)` (extraction's --limit) decodes only n images.

    `keys` are the samples' paths relative to their split folder (`<class>/<file>`): the identity a
    corrupted copy in a `<corruption>/<severity>/<class>/<file>` tree is matched by.
    `decode(path) -> uint8 (size, size, 3)` is the dataset's resize rule.
    `paired` is False for corrupted images that are not copies of the clean ones row for row (Tiny-ImageNet-C
    without its clean crops: same class, other photograph), so per-sample comparisons must say so.
    """

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, keys: Sequence[str], size: int,
                 decode: Callable[[Path], np.ndarray], *, paired: bool = True) -> None:
        if not (len(paths) == len(labels) == len(keys)):
            raise DataError(f"{len(paths)} paths, {len(labels)} labels and {len(keys)} keys: counts differ")
        self.paths = tuple(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.keys = tuple(keys)
        self.size = size
        self.decode = decode
        self.paired = paired

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def image_size(self) -> int:
        return self.size

    @cached_property
    def images(self) -> np.ndarray:
        """uint8 (N, size, size, 3), every file decoded (once; kept afterwards), on a few threads: PIL
        releases the GIL while it decodes and resizes."""
        images = np.empty((len(self), self.size, self.size, 3), dtype=np.uint8)
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for row, image in enumerate(pool.map(self.decode, self.paths)):
                images[row] = image
        return images

    def subset(self, count: int | None) -> FileImageSet:
        """The first `count` samples (all when None), still undecoded."""
        if count is None or count >= len(self):
            return self
        return FileImageSet(self.paths[:count], self.labels[:count], self.keys[:count], self.size, self.decode,
                            paired=self.paired)


@dataclass(frozen=True)
class Dataset:
    """A train/test pair with its class names; `name` is the registry key."""

    name: str
    class_names: tuple[str, ...]
    train: ImageSet | FileImageSet
    test: ImageSet | FileImageSet

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def with_class_names(self, names: Sequence[str]) -> Dataset:
        """This dataset labelled by `names` (a model's output classes, in output order): each class keeps its
        images and takes the position of its name in `names` as its label. DataError naming the classes of
        the dataset that `names` lacks, or a name given twice."""
        names = tuple(names)
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise DataError(f"--model-classes names {twice[:3]} more than once")
        missing = [name for name in self.class_names if name not in names]
        if missing:
            raise DataError(f"dataset {self.name} has classes the model's outputs do not name: "
                            f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''} (--model-classes)")
        position = np.array([names.index(name) for name in self.class_names], dtype=np.int64)
        return replace(self, class_names=names, train=_relabelled(self.train, position),
                       test=_relabelled(self.test, position))

    @property
    def image_size(self) -> int:
        return self.test.image_size


def _relabelled(images: ImageSet | FileImageSet, position: np.ndarray) -> ImageSet | FileImageSet:
    """The same images with label l replaced by position[l]."""
    labels = position[images.labels] if len(images.labels) else images.labels
    if isinstance(images, ImageSet):
        return ImageSet(images.images, labels)
    return FileImageSet(images.paths, labels, images.keys, images.size, images.decode, paired=images.paired)
