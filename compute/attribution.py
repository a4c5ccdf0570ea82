"""Occlusion attribution of one sample: slide a patch over the image and recompute its geometry.

`occlusion_maps` is what one attribution click asks of compute: the model a store's card describes,
loaded under the server's policy (compute.loading: only files inside the store or under an allowed
root) and kept once per process, run over the occluded copies of the image. The image is the one the
model saw (compute.pixels), so the maps are of the pixels extraction used.

One click cannot take the server down: the patch and stride scale with the image (about the same 7 x 7
grid of patch positions at every size, `patch_and_stride`), and the occluded copies go through the model
in chunks sized by a memory budget (`chunk_size`: MEMORY_BUDGET for the whole server, shared by at most
MAX_RUNNING attributions at once), each chunk reporting progress, so a caller can stop between chunks.
The dashboard's panel (dashboard/attribution.py) holds the slots, the progress bar, Cancel and the results.

torch is imported inside the functions, on demand, so a page that only draws the controls loads without it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from compute import loading
from store.confine import regular, resolve_allowed
from store.layout import StoreError

METRICS = ("angle_true", "feature_norm", "margin")
UNITS = {"angle_true": "degrees", "feature_norm": "feature units", "margin": "feature units"}
GRID = 7  # about this many patch positions per side at every image size (8-px patch, stride 4, on 32 px)
MEMORY_BUDGET = 2 << 30  # bytes for every attribution of the server together
MAX_RUNNING = 2  # attributions running at once on the whole server
# Memory of one occluded copy going through a model, in units of its float32 input: the input itself
# plus the largest activations kept at once in inference (a ResNet-50 at 224 px holds about 20x its input).
COPY_FACTOR = 64
MODELS_KEPT = 8  # loaded models kept per process
Progress = Callable[[int, int], None]  # (copies done, copies in all)


def patch_and_stride(size: int) -> tuple[int, int]:
    """(patch, stride) for a `size`-px image: a patch of a quarter of the side moved by half a patch, so
    about GRID x GRID positions at every size (8 and 4 px on 32 px; 56 and 28 on 224 px)."""
    patch = max(2, size // 4)
    return patch, max(1, patch // 2)


def chunk_size(image_shape: tuple[int, ...], budget: int = MEMORY_BUDGET // MAX_RUNNING) -> int:
    """How many occluded copies go through the model at once within `budget` bytes (at least one)."""
    return max(1, budget // _copy_bytes(image_shape))


def _copy_bytes(image_shape: tuple[int, ...]) -> int:
    """Estimated memory of one occluded copy going through a model (COPY_FACTOR times its float32 input)."""
    return image_shape[0] * image_shape[1] * 3 * 4 * COPY_FACTOR


def occlusion(model: Any, image: np.ndarray, label: int, patch: int | None = None, stride: int | None = None,
              budget: int = MEMORY_BUDGET // MAX_RUNNING, progress: Progress | None = None) -> dict[str, Any]:
    """Per metric of METRICS, an (H, W) map: the mean change of the metric (occluded minus original) over
    the patch positions covering each pixel; the patch is filled with the image's mean colour. Also
    `original`: the metric values of the unoccluded image.

    `model` meets the model contract (forward_features, classifier); `image` is uint8 (H, W, 3). `patch`
    and `stride` default to patch_and_stride of the image's side; the copies go through the model in
    chunks of chunk_size(budget), and `progress(done, total)` is called after each.
    """
    import torch

    from compute import geometry  # torch: only when a visitor asks for attribution maps

    height, width = image.shape[:2]
    default_patch, default_stride = patch_and_stride(min(height, width))
    patch, stride = patch or default_patch, stride or default_stride
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
    fill = x.mean(dim=(1, 2), keepdim=True)
    corners = [None] + [(top, left) for top in range(0, height - patch + 1, stride)
                        for left in range(0, width - patch + 1, stride)]  # None: the original image
    step = chunk_size(image.shape, budget)
    values: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
    for start in range(0, len(corners), step):
        chunk = corners[start:start + step]
        batch = x.repeat(len(chunk), 1, 1, 1)
        for index, corner in enumerate(chunk):
            if corner is not None:
                top, left = corner
                batch[index, :, top:top + patch, left:left + patch] = fill
        with torch.no_grad():
            features = model.forward_features(batch)
            result = geometry.compute(features, model.classifier.weight, model.classifier.bias,
                                      torch.full((len(batch),), int(label)))
        for metric in METRICS:
            values[metric].append(getattr(result, metric).double().numpy())
        del batch, features, result
        if progress is not None:
            progress(min(start + step, len(corners)), len(corners))
    maps: dict[str, Any] = {"original": {}}
    for metric in METRICS:
        metric_values = np.concatenate(values[metric])
        change, cover = np.zeros((height, width)), np.zeros((height, width))
        for index, (top, left) in enumerate(corners[1:], start=1):
            change[top:top + patch, left:left + patch] += metric_values[index] - metric_values[0]
            cover[top:top + patch, left:left + patch] += 1
        maps[metric] = np.where(cover > 0, change / np.maximum(cover, 1), np.nan)
        maps["original"][metric] = float(metric_values[0])
    return maps


@functools.lru_cache(maxsize=MODELS_KEPT)
def _model(root: str, recorded: str | None, mtime: float, loader: str | None, image_size: int) -> Any:
    """The model of a store's card, loaded once per process and file version (`mtime`), on the CPU."""
    return loading.load_model({"checkpoint": recorded, "loader": loader}, image_size, root=root)


def occlusion_maps(root: str, recorded: str | None, image: np.ndarray, label: int, *, loader: str | None = None,
                   progress: Progress | None = None) -> dict[str, Any]:
    """occlusion() with the model models.parquet records in the store `root` (`recorded`: its checkpoint or
    weights; `loader`: how it is loaded, compute.loading), loaded once per process, on the CPU.

    StoreError, before anything is loaded, when the policy refuses the model (compute.loading.
    missing_checkpoint: only inside the store or under an allowed root) or one occluded copy of `image`
    needs more memory than an attribution may use; and for a damaged or mismatched checkpoint (the message
    names the model's checkpoint, not its path on the server).
    """
    problem = loading.missing_checkpoint(root, recorded, loader)
    if problem:
        raise StoreError(problem)
    if _copy_bytes(image.shape) > MEMORY_BUDGET // MAX_RUNNING:
        raise StoreError(f"a {image.shape[0]} x {image.shape[1]} image needs more memory for one occluded copy "
                         f"than an attribution may use on this server ({MEMORY_BUDGET // MAX_RUNNING >> 20} MB)")
    mtime = regular(resolve_allowed(root, recorded)).stat().st_mtime if recorded else 0.0
    model = _model(root, recorded, mtime, loader, image.shape[0])
    return occlusion(model, image, label, progress=progress)
