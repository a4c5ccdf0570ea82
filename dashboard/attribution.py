"""Occlusion attribution of one sample: slide a patch over the image and recompute its geometry.

The only place the dashboard runs a model. torch is imported inside the functions, on demand, so pages
load without it; checkpoints load once per process (st.cache_resource), results are cached per
(checkpoint, image, label) with st.cache_data. The Sample page passes the image the model saw
(`compute.pixels.image` through dashboard.images.sample_image), so the maps are of the pixels extraction
used, and no map is drawn when those pixels cannot be had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from store.confine import resolve_allowed
from store.layout import StoreError

METRICS = ("angle_true", "feature_norm", "margin")
UNITS = {"angle_true": "degrees", "feature_norm": "feature units", "margin": "feature units"}


def occlusion(model: Any, image: np.ndarray, label: int, patch: int = 8, stride: int = 4) -> dict[str, Any]:
    """Per metric of METRICS, an (H, W) map: the mean change of the metric (occluded minus original) over
    the patch positions covering each pixel; the patch is filled with the image's mean colour. Also
    `original`: the metric values of the unoccluded image.

    `model` meets the model contract (forward_features, classifier); `image` is uint8 (H, W, 3).
    """
    import torch

    from compute import geometry

    height, width = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
    fill = x.mean(dim=(1, 2), keepdim=True)
    corners = [(top, left) for top in range(0, height - patch + 1, stride)
               for left in range(0, width - patch + 1, stride)]
    batch = x.repeat(len(corners) + 1, 1, 1, 1)
    for index, (top, left) in enumerate(corners, start=1):
        batch[index, :, top:top + patch, left:left + patch] = fill
    with torch.no_grad():
        features = model.forward_features(batch)
        result = geometry.compute(features, model.classifier.weight, model.classifier.bias,
                                  torch.full((len(batch),), int(label)))
    maps: dict[str, Any] = {"original": {}}
    for metric in METRICS:
        values = getattr(result, metric).double().numpy()
        change, cover = np.zeros((height, width)), np.zeros((height, width))
        for index, (top, left) in enumerate(corners, start=1):
            change[top:top + patch, left:left + patch] += values[index] - values[0]
            cover[top:top + patch, left:left + patch] += 1
        maps[metric] = np.where(cover > 0, change / np.maximum(cover, 1), np.nan)
        maps["original"][metric] = float(values[0])
    return maps


@st.cache_resource(show_spinner=False, max_entries=8)
def _model(path: str, mtime: float) -> Any:
    from compute import checkpoint

    return checkpoint.load(path)[0]


@st.cache_data(show_spinner=False, max_entries=64)
def occlusion_maps(root: str, recorded: str, image: np.ndarray, label: int, patch: int = 8,
                   stride: int = 4) -> dict[str, Any]:
    """occlusion() with the model of the checkpoint models.parquet records (loaded once, CPU).

    The recorded path is resolved by store.confine.resolve_allowed: only inside the store `root` or a
    declared checkpoint root; StoreError (a ValueError) otherwise.
    """
    path = resolve_allowed(root, recorded)
    return occlusion(_model(str(path), path.stat().st_mtime), image, label, patch, stride)


def missing_checkpoint(root: str | Path, recorded: str | None) -> str | None:
    """Why attribution cannot run for this model (no path recorded, a path outside the store, or the file is
    gone), else None. Nothing outside the store is touched, so the answer reveals nothing about it."""
    if not recorded:
        return "This model has no checkpoint recorded in models.parquet, so its attribution cannot be computed."
    try:
        path = resolve_allowed(root, recorded)
    except StoreError as error:
        return f"Attribution refused: {error}."
    if not path.is_file():
        return f"The checkpoint `{recorded}` is not in this store, so the attribution cannot be computed."
    return None
