"""Dataset registry: a name maps to a loader `load(root, download) -> Dataset`.

Add a dataset by adding a module with a `load` function and one line in `LOADERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from compute.datasets import cifar10, digits
from compute.datasets.base import DataError, Dataset, ImageSet

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": digits.load,
    "cifar10": cifar10.load,
}
NAMES = tuple(LOADERS)


def load(name: str, root: str | None = None, download: bool = False) -> Dataset:
    """Load dataset `name`; `root` is its data directory (required for datasets that are not embedded)."""
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    return LOADERS[name](root=root, download=download)


__all__ = ["DataError", "Dataset", "ImageSet", "NAMES", "load"]
