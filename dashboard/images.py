"""Images for drill-down: the store's clean test images and one sample's corrupted versions.

Corrupted images come from the store when it keeps them (`images/<corruption>_<severity>.npy`, same rows
as clean.npy); otherwise they are regenerated exactly as extraction made them, from (seed 0, sample id),
by compute.corruptions. That needs torch, imported only then.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from store import schema
from store.catalog import Catalog
from store.writer import StoreError

CORRUPTION_SEED = 0  # the seed extraction uses (compute.study.CORRUPTION_SEED)


@st.cache_resource(show_spinner=False, max_entries=4)
def _clean(path: str, mtime: float, num_samples: int) -> np.ndarray:
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise StoreError(f"{path}: not a readable .npy file of images: {error}") from error
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[0] != num_samples:
        raise StoreError(f"{path}: holds {images.dtype} images of shape {images.shape}; expected uint8 of shape "
                         f"({num_samples}, H, W, 3), one image per sample")
    return images


def clean_images(catalog: Catalog) -> np.ndarray | None:
    """The store's clean test images, uint8 (N, H, W, 3), memory-mapped; None when the store has none;
    StoreError naming the file when it is damaged or of the wrong shape or type."""
    path = catalog.root / schema.IMAGES / "clean.npy"
    return _clean(str(path), path.stat().st_mtime, int(catalog.manifest["num_samples"])) if path.is_file() else None


@st.cache_data(show_spinner=False, max_entries=4096)
def corrupted_image(root: str, sample_id: int, corruption: str, severity: int) -> np.ndarray:
    """One sample under one corruption and severity (uint8 (H, W, 3)): stored, or regenerated."""
    stored = Path(root) / schema.IMAGES / f"{corruption}_{severity}.npy"
    if stored.is_file():
        return np.array(np.load(stored, mmap_mode="r")[sample_id])
    clean = np.load(Path(root) / schema.IMAGES / "clean.npy", mmap_mode="r")
    from compute import corruptions  # torch: only when a corrupted image is asked for

    return corruptions.corrupt(np.array(clean[sample_id : sample_id + 1]), corruption, severity,
                               seed=CORRUPTION_SEED, sample_ids=np.array([sample_id]))[0]


def sample_image(catalog: Catalog, sample_id: int, corruption: str, severity: int) -> np.ndarray | None:
    """The sample as a model saw it in one setting; None when the store keeps no images."""
    images = clean_images(catalog)
    if images is None:
        return None
    if corruption == schema.CLEAN:
        return np.array(images[sample_id])
    return corrupted_image(str(catalog.root), sample_id, corruption, severity)


def enlarged(image: np.ndarray, size: int = 96) -> np.ndarray:
    """Nearest-neighbour enlargement to about `size` pixels, so small images stay crisp on screen."""
    factor = max(1, size // image.shape[0])
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
