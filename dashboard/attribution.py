"""Occlusion attribution of one sample: slide a patch over the image and recompute its geometry.

The only place the dashboard runs a model. torch is imported inside the functions, on demand, so pages
load without it; checkpoints load once per process (st.cache_resource), results are cached per
(checkpoint, image, label) with st.cache_data. The Sample page passes the image the model saw
(`compute.pixels.image` through dashboard.images.sample_image), so the maps are of the pixels extraction
used, and no map is drawn when those pixels cannot be had.
"""

from __future__ import annotations

import importlib.util
import json
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
def _model(path: str | None, mtime: float, loader: str | None, image_size: int) -> Any:
    """The model a models.parquet row describes: a prunescope checkpoint at `path`, or what its `loader`
    says (compute.cards: module:function with the weights at `path`, or a RobustBench model)."""
    from compute import cards, checkpoint

    record = _loader_record(loader)
    if record is None or record["kind"] == "checkpoint":
        return checkpoint.load(path)[0]
    return cards.load(record, path, image_size)


@st.cache_data(show_spinner=False, max_entries=64)
def occlusion_maps(root: str, recorded: str | None, image: np.ndarray, label: int, patch: int = 8,
                   stride: int = 4, loader: str | None = None) -> dict[str, Any]:
    """occlusion() with the model models.parquet records (`recorded`: its checkpoint or weights; `loader`:
    how it is loaded, see compute.cards), loaded once, on the CPU.

    Every file is resolved by store.confine.resolve_allowed: only inside the store `root` or an allowed
    root; StoreError (a ValueError) otherwise (`missing_checkpoint` says so before anything is loaded).
    """
    problem = missing_checkpoint(root, recorded, loader)
    if problem:
        raise StoreError(problem)
    path = resolve_allowed(root, recorded) if recorded else None
    mtime = path.stat().st_mtime if path else 0.0
    return occlusion(_model(str(path) if path else None, mtime, loader, image.shape[0]), image, label, patch,
                     stride)


def _loader_record(loader: str | None) -> dict[str, Any] | None:
    """models.parquet's `loader` JSON (compute.cards.ModelSpec.loader); None for a store written before it."""
    return None if loader is None else json.loads(loader)


def missing_checkpoint(root: str | Path, recorded: str | None, loader: str | None = None) -> str | None:
    """Why attribution cannot run for this model, else None: a prunescope checkpoint that is not recorded,
    outside the store and the allowed roots, or gone; a module:function whose module's file or weights lie
    outside them (the operator decides which code and files the server may load: --allow-root); a
    RobustBench model without the package or outside them. Nothing outside the allowed places is touched,
    so the answer reveals nothing about it."""
    record = _loader_record(loader)
    kind = "checkpoint" if record is None else record.get("kind")
    if kind == "module":
        return _module_problem(root, record) or (_file_problem(root, recorded, "weights") if recorded else None)
    if kind == "robustbench":
        return _robustbench_problem(root, record)
    if not recorded:
        return "This model has no checkpoint recorded in models.parquet, so its attribution cannot be computed."
    return _file_problem(root, recorded, "checkpoint")


def _file_problem(root: str | Path, recorded: str, what: str) -> str | None:
    try:
        path = resolve_allowed(root, recorded, what)
    except StoreError as error:
        return f"Attribution refused: {error}."
    if not path.is_file():
        return f"The {what} `{recorded}` is not in this store, so the attribution cannot be computed."
    return None


def _module_problem(root: str | Path, record: dict[str, Any]) -> str | None:
    """The module of a module:function loader must be importable and its files allowed (they are code the
    server would run). The top-level package is found first (finding it runs none of its code) and must
    lie under the allowed places before a dotted module's parent package is imported to find the rest."""
    module = str(record.get("function", "")).partition(":")[0]
    for name in dict.fromkeys([module.partition(".")[0], module]):
        try:
            spec = importlib.util.find_spec(name) if name else None
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            return (f"The model's module `{module}` cannot be imported by this server, so its attribution cannot "
                    "be computed (the operator starts the dashboard where it is importable: PYTHONPATH).")
        if not Path(spec.origin).is_absolute():  # built into Python (frozen, built-in): never a model's file
            return f"Attribution refused: the model's module `{module}` is not a file under the allowed roots."
        problem = _file_problem(root, spec.origin, "model module")
        if problem:
            return problem
    return None


def _robustbench_problem(root: str | Path, record: dict[str, Any]) -> str | None:
    if importlib.util.find_spec("robustbench") is None:
        return "RobustBench models need the optional robustbench package, which this server does not have."
    model_dir = record.get("model_dir")
    if not model_dir:
        return "This RobustBench model's download directory is not recorded, so it cannot be loaded here."
    try:
        resolve_allowed(root, model_dir, "RobustBench model directory")
    except StoreError as error:
        return f"Attribution refused: {error}."
    return None
