"""The one shape every dataset takes: uint8 HWC RGB images in memory, integer labels, class names."""

from __future__ import annotations

from dataclasses import dataclass

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

    def subset(self, count: int | None) -> ImageSet:
        """The first `count` samples (all when None); sample ids stay the row positions."""
        if count is None or count >= len(self):
            return self
        return ImageSet(self.images[:count], self.labels[:count])


@dataclass(frozen=True)
class Dataset:
    """A train/test pair with its class names; `name` is the registry key."""

    name: str
    class_names: tuple[str, ...]
    train: ImageSet
    test: ImageSet

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.test.images.shape[1])
