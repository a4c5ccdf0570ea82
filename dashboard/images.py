"""Images for drill-down: one sample exactly as the models saw it, via `compute.pixels.image`, sent to the
browser losslessly (`show`: PNG).

That follows the store's provenance record of each setting: the store's clean images, the published
files extraction read (checked against their recorded sha256), or images regenerated with
compute.corruptions when its implementation and the seed match the record (torch, imported only then).
When the pixels cannot be had, `sample_image` says why instead (a file moved or changed, a store written
before provenance was recorded), and the page shows that message, never other pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from compute import pixels
from store import layout
from store.catalog import Catalog
from store.confine import regular
from store.layout import StoreError


@st.cache_resource(show_spinner=False, max_entries=4)
def _clean(path: str, mtime: float, num_samples: int) -> np.ndarray:
    try:
        images = np.load(regular(path), mmap_mode="r")
    except (OSError, ValueError) as error:
        raise StoreError(f"{path}: not a readable .npy file of images: {error}") from error
    problem = layout.images_problem(images.shape, images.dtype, count=num_samples)
    if problem:
        raise StoreError(f"{path}: {problem}, one image per sample")
    return images


def clean_images(catalog: Catalog) -> np.ndarray | None:
    """The store's clean test images, uint8 (N, H, W, 3), memory-mapped; None when the store has none;
    StoreError naming the file when it is damaged or of the wrong shape or type."""
    path = catalog.root / layout.CLEAN_IMAGES
    return _clean(str(path), path.stat().st_mtime, int(catalog.manifest["num_samples"])) if path.is_file() else None


def sample_image(catalog: Catalog, sample_id: int, corruption: str, severity: int) -> np.ndarray | str:
    """The sample as the models saw it in one setting (uint8 (H, W, 3)), or the reason it cannot be shown."""
    try:
        return pixels.image(catalog.root, sample_id, corruption, severity)
    except StoreError as error:
        return str(error)


def show(container: Any, image: np.ndarray | list[np.ndarray], **options: Any) -> None:
    """Draw images exactly as given: PNG, lossless (st.image sends photos as JPEG by default, tens of grey
    levels off on noise), so the page shows the pixels the models saw. `container` is st or a column."""
    container.image(image, output_format="PNG", **options)


def enlarged(image: np.ndarray, size: int = 96) -> np.ndarray:
    """Nearest-neighbour enlargement to about `size` pixels, so small images stay crisp on screen."""
    factor = max(1, size // image.shape[0])
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
