"""The image source of an extraction: where each setting's uint8 (N, H, W, 3) images come from.

Generated with compute.corruptions from the test images and a seed (on the GPU when there is one), or
read from published files (CIFAR-C .npy files, Tiny-ImageNet-C / ImageNet-C / image-folder trees), and
the store's provenance record of how each setting's images are made (store/provenance.py). The
dashboard's side of the same record is compute.pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from compute import corruptions, datasets
from compute import device as devices
from compute.datasets import cifar10c, folders
from compute.datasets.base import ImageSet
from store import layout, provenance, vocabulary


@torch.no_grad()
def corrupted_images(images: torch.Tensor, name: str, severity: int, seed: int, device: torch.device,
                     batch_size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) images under one corruption, made and kept on `device` (same bytes as `corrupt`)."""
    images = images.to(device)
    if name == layout.CLEAN:
        return images
    out = torch.empty_like(images)
    for part in devices.batches(len(images), batch_size):
        x = devices.to_input(images[part], device)
        ids = torch.arange(part.start, part.stop, device=device)
        y = corruptions.corrupt_tensor(x, name, severity, seed=seed, sample_ids=ids)
        out[part] = corruptions.to_uint8(y).permute(0, 2, 3, 1)
    return out


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """A uint8 image array as a tensor on `device` (arrays from a shared object store are read-only)."""
    return torch.from_numpy(images if images.flags.writeable else images.copy()).to(device)


@dataclass(frozen=True)
class ImageSource:
    """Where a setting's images come from: generated with compute.corruptions from the test images with
    `seed`, or read from published files: `corrupted_dir` in the layout of dataset `dataset` (CIFAR-C
    .npy files, or Tiny-ImageNet-C / ImageNet-C / image-folder trees; copies of the test set, first `limit`
    rows), or any `load_corrupted(name, severity)` (benchmarks; it records no provenance)."""

    test: ImageSet
    seed: int = 0
    load_corrupted: Callable[[str, int], np.ndarray] | None = None
    corrupted_dir: str | None = None
    limit: int | None = None
    dataset: str = "cifar10"

    def read_corrupted(self, name: str, severity: int) -> np.ndarray | None:
        """The published images of a setting, or None when this source generates them."""
        if self.corrupted_dir is not None:
            return datasets.load_corrupted(self.dataset, self.corrupted_dir, name, severity, self.test).images
        if self.load_corrupted is not None:
            return self.load_corrupted(name, severity)
        return None

    def provenance(self, name: str, severity: int) -> tuple[dict[str, Any], provenance.Listing | None]:
        """The store's record of how this setting's images are made (store/provenance.py), and for a
        folder tree the listing of its files (hashed as bytes: nothing is decoded here)."""
        if name == layout.CLEAN:
            return provenance.stored(self.test.images), None
        if self.corrupted_dir is None:
            return provenance.generated(self.seed, corruptions.IMPLEMENTATION), None
        if self.dataset not in datasets.NPY_FOLDERS:  # a folder tree: one file per image
            copy = datasets.load_corrupted(self.dataset, self.corrupted_dir, name, severity, self.test)
            record, listing = provenance.from_tree(copy.paths, copy.keys, self.test.size,
                                                   folders.rule_spec(self.test.decode))
            return ({**record, provenance.PAIRED: False} if not copy.paired else record), listing
        images = self.read_corrupted(name, severity)
        path = cifar10c.find_directory(self.corrupted_dir, datasets.NPY_FOLDERS[self.dataset]) / f"{name}.npy"
        per_severity = len(np.load(path, mmap_mode="r")) // len(vocabulary.SEVERITIES)
        start = (severity - 1) * per_severity
        return provenance.from_files(path, (start, start + len(images)), images), None

    def on(self, device: torch.device, batch_size: int) -> Callable[[str, int], torch.Tensor]:
        """`images(name, severity)` on `device`; the clean images cross to the device once."""
        clean = to_device(self.test.images, device)

        def images(name: str, severity: int) -> torch.Tensor:
            read = None if name == layout.CLEAN else self.read_corrupted(name, severity)
            if read is not None:
                return to_device(read, device)
            return corrupted_images(clean, name, severity, self.seed, device, batch_size)
        return images
