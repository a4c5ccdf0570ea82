"""`digits`: scikit-learn's bundled 8x8 handwritten digits, upsampled to 32x32 RGB.

Embedded, so the demo and CI need no download. 1797 images; a fixed stratified split keeps
~30% (540 images) for the test set, so sample ids mean the same thing on every machine.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compute.datasets.base import Dataset, ImageSet

CLASS_NAMES = tuple(str(digit) for digit in range(10))
TEST_FRACTION = 0.3
SPLIT_SEED = 0
SIZE = 32


def _upsample(images_8x8: np.ndarray) -> np.ndarray:
    """(N, 8, 8) values 0..16 -> uint8 (N, 32, 32, 3), bilinear, grey replicated to RGB."""
    grey = torch.from_numpy(images_8x8.astype(np.float32) / 16.0)[:, None]
    grey = F.interpolate(grey, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    grey = (grey.clamp(0, 1) * 255).round().to(torch.uint8)
    return grey.permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous().numpy()


def load(root: str | None = None, download: bool = False) -> Dataset:
    """The digits dataset; `root` and `download` are accepted for a uniform registry signature."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = _upsample(bunch.images)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    train_idx.sort()
    test_idx.sort()
    return Dataset(
        name="digits",
        class_names=CLASS_NAMES,
        train=ImageSet(images[train_idx], labels[train_idx]),
        test=ImageSet(images[test_idx], labels[test_idx]),
    )
