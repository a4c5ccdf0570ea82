"""The 19 corruptions of CIFAR-10-C, Tiny-ImageNet-C and ImageNet-C (Hendrycks & Dietterich, ICLR 2019),
batched in torch and reproducible.

`corrupt(images, name, severity, seed, sample_ids)` takes and returns uint8 (N, H, W, 3) arrays, like the
published files; `corrupt_tensor` does the same on float (N, 3, H, W) tensors in [0, 1] on any device,
so extraction can corrupt on the GPU next to the model. A sample's corruption depends only on (seed,
sample id, name, severity): not on the batch it is in nor on the device (see _random.py).
Square images of any side >= 32 px: the constants of the published resolutions (32, 64, 224 px) are in
constants.py, with the rule for other sizes. Float results become 8-bit by truncation, as the original's
np.uint8 did (`to_uint8`); at 64 and 224 px the result is also stored through a quality-85 JPEG, as
Tiny-ImageNet-C and ImageNet-C were. Where we had to approximate the original (frost's photographs),
the family module says how and why, and docs/corruptions.md collects it.

Add a corruption: write `fn(x, severity, rng) -> Tensor` in its family module, add one line to REGISTRY
and its name, family and abbreviation to store.vocabulary.CORRUPTIONS (names, families and severities
live there, once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from compute.corruptions import _filters, blur, digital, noise, weather
from compute.corruptions import constants as _constants
from compute.corruptions._random import SampleRandom
from store import layout, vocabulary

Corruption = Callable[[Tensor, int, SampleRandom], Tensor]

REGISTRY: dict[str, Corruption] = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": weather.brightness,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "speckle_noise": noise.speckle_noise,
    "gaussian_blur": blur.gaussian_blur,
    "spatter": weather.spatter,
    "saturate": digital.saturate,
}
# The canonical order (the vocabulary's): the 15 common corruptions, then the 4 held out for validation.
NAMES: tuple[str, ...] = vocabulary.CORRUPTION_NAMES
MIN_SIZE = _constants.MIN_SIZE  # the smallest published resolution
# The version of this implementation, recorded in a store's provenance with the seed of every generated
# setting: bump it whenever any corruption's output pixels change, so stores made before are not shown
# regenerated images that their models never saw.
IMPLEMENTATION = "prunescope-corruptions-2"


def to_uint8(x: Tensor) -> Tensor:
    """Float images in [0, 1] (any layout) -> uint8, truncating as the original's np.uint8(x * 255) did
    (Q6): 254.9 becomes 254. The one float -> 8-bit conversion for corrupted images (extraction uses it)."""
    return _filters.truncate_levels(x).to(torch.uint8)


def corrupt_tensor(x: Tensor, name: str, severity: int, seed: int = 0,
                   sample_ids: Tensor | Sequence[int] | np.ndarray | None = None) -> Tensor:
    """Corrupt float images (N, 3, H, W) in [0, 1] on any device; returns the same shape, dtype and device.

    `sample_ids` are the samples' absolute indices in their dataset (default 0..N-1): they, not the
    position in this batch, choose the random draws, so any batching gives the same images.
    """
    _check_setting(name, severity)
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be a float tensor of shape (N, 3, H, W), got "
                         f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}")
    _check_size(x.shape[2], x.shape[3])
    ids = _sample_ids(sample_ids, x.shape[0], x.device)
    if x.shape[0] == 0:
        return x.clone()
    rng = SampleRandom(seed, name, ids)
    out = REGISTRY[name](x.to(torch.float32).contiguous(), severity, rng)
    quality = _constants.STORED_JPEG_QUALITY[_constants.base_resolution(x.shape[-1])]
    if quality is not None:  # Tiny-ImageNet-C and ImageNet-C were saved as JPEG (Q10)
        out = digital.jpeg_round_trip(out, quality)
    return out.to(x.dtype)


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0,
            sample_ids: Sequence[int] | np.ndarray | None = None, *, batch_size: int = 512,
            device: str | torch.device = "cpu") -> np.ndarray:
    """Corrupt uint8 images (N, H, W, 3); returns a new uint8 array of the same shape.

    Works through the images `batch_size` at a time on `device`; the result does not depend on either.
    """
    _check_setting(name, severity)
    problem = (layout.images_problem(images.shape, images.dtype) if isinstance(images, np.ndarray)
               else f"is a {type(images).__name__}")
    if problem:
        raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3); this one {problem}")
    _check_size(images.shape[1], images.shape[2])
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device)
    ids = _sample_ids(sample_ids, len(images), torch.device("cpu"))
    out = np.empty_like(images)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            x = torch.from_numpy(images[start:stop]).to(device).permute(0, 3, 1, 2).contiguous()
            x = x.to(torch.float32).div_(255)
            y = corrupt_tensor(x, name, severity, seed=seed, sample_ids=ids[start:stop].to(device))
            out[start:stop] = to_uint8(y).permute(0, 2, 3, 1).cpu().numpy()
    return out


def _check_setting(name: str, severity: int) -> None:
    if name not in REGISTRY:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(NAMES)}")
    if not vocabulary.is_severity(severity):
        raise ValueError(f"severity must be one of {', '.join(map(str, vocabulary.SEVERITIES))}, got {severity!r}")


def _check_size(height: int, width: int) -> None:
    if height != width or height < MIN_SIZE:
        raise ValueError(f"corruptions need square images of at least {MIN_SIZE}x{MIN_SIZE} pixels "
                         f"(constants are published for 32, 64 and 224 px), got shape {height}x{width}")


def _sample_ids(sample_ids: Tensor | Sequence[int] | np.ndarray | None, count: int,
                device: torch.device) -> Tensor:
    if sample_ids is None:
        return torch.arange(count, device=device)
    ids = torch.as_tensor(sample_ids, device=device)
    if ids.shape != (count,) or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"sample_ids must be {count} integers (one per image), got {ids.dtype} {tuple(ids.shape)}")
    if count and int(ids.min()) < 0:
        raise ValueError(f"sample_ids must be non-negative, got minimum {int(ids.min())}")
    return ids.to(torch.int64)


__all__ = ["IMPLEMENTATION", "NAMES", "REGISTRY", "corrupt", "corrupt_tensor", "to_uint8"]
