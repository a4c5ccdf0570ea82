"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur.

Constants per resolution are in constants.py. Glass blur reproduces the original's sweep exactly,
including its quirks (reference/benchmarks.md Q1-Q3): the first blur is stored as uint8 (truncated);
the "swap" line `x[h, w], x[h', w'] = x[h', w'], x[h, w]` copies the neighbour's value into (h, w) and
leaves (h', w') as it was (Python assigns the first target before it reads the second source); the
offsets are numpy's randint(-d, d), so -d..d-1; the sweep runs from the bottom-right corner over rows
and columns H-d down to d+1. Because each visited pixel copies the *current* value of its neighbour,
a pixel whose neighbour was already rewritten takes that neighbour's source in turn: the sweep is a
chain of copies, resolved here by pointer jumping (each round doubles the followed chain length) on
integer indices, a handful of batched gathers instead of H*W sequential steps.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from compute.corruptions import _filters
from compute.corruptions import constants as C
from compute.corruptions._random import SampleRandom


def gaussian_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Gaussian blur of each channel (skimage: edge border, kernel truncated at 4 sigma)."""
    sigma = C.setting(C.GAUSSIAN_BLUR_SIGMA, x.shape[-1], severity) * C.pixel_scale(x.shape[-1])
    return _filters.gaussian_blur(x, sigma).clamp(0, 1)


def glass_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Blur, store as uint8 (truncated), run the copy sweep `iterations` times, blur again."""
    size = x.shape[-1]
    sigma, max_shift, iterations = C.setting(C.GLASS_BLUR, size, severity)
    scale = C.pixel_scale(size)
    sigma *= scale
    max_shift = max(1, round(max_shift * scale))
    levels = _filters.truncate_levels(_filters.gaussian_blur(x, sigma).clamp(0, 1))  # np.uint8(... * 255)
    visited = sweep_positions(size, max_shift, str(x.device))
    # numpy's randint(-max_shift, max_shift) per visited pixel, (row, column) offsets
    shifts = rng.integers("shifts", (iterations, len(visited), 2), -max_shift, max_shift, device=x.device)
    for iteration in range(iterations):
        levels = sweep_copies(levels, shifts[:, iteration], max_shift)
    return _filters.gaussian_blur(levels / 255, sigma).clamp(0, 1)


@functools.lru_cache(maxsize=16)
def sweep_positions(size: int, max_shift: int, device: str) -> Tensor:
    """Flat positions h * size + w the original visits, in its order: h, then w, from size - max_shift
    down to max_shift + 1."""
    visited = np.arange(size - max_shift, max_shift, -1)
    return torch.as_tensor((visited[:, None] * size + visited[None, :]).reshape(-1), device=device)


def sweep_copies(x: Tensor, shifts: Tensor, max_shift: int) -> Tensor:
    """One pass of the original's loop, `x[h, w] = x[h + dy, w + dx]` in visiting order, on (N, C, H, W).

    `shifts` is (N, visited, 2): the (dy, dx) of each visited pixel in visiting order. A pixel reads
    its neighbour's current value: the original value if the neighbour is visited later (or never),
    else whatever the neighbour copied, recursively. Pointer jumping follows those chains.
    """
    n, channels, size, _ = x.shape
    visited = sweep_positions(size, max_shift, str(x.device))
    pixels = size * size
    # visiting rank of every position; never-visited positions rank last (they are never rewritten)
    rank = torch.full((pixels,), len(visited), dtype=torch.int64, device=x.device)
    rank[visited] = torch.arange(len(visited), device=x.device)
    source = torch.arange(pixels, device=x.device).repeat(n, 1)  # (N, pixels)
    targets = visited[None, :] + shifts[..., 0] * size + shifts[..., 1]
    source[:, visited] = targets
    # follow the chain while the source was rewritten before its reader (strictly lower rank)
    follow = torch.zeros(n, pixels, dtype=torch.bool, device=x.device)
    follow[:, visited] = rank[targets] < rank[visited][None, :]
    while bool(follow.any()):  # resolve(p) = resolve(source[p]) if follow[p] else source[p]
        source, follow = torch.where(follow, source.gather(1, source), source), follow & follow.gather(1, source)
    flat = x.reshape(n, channels, pixels)
    return flat.gather(2, source[:, None, :].expand(n, channels, pixels)).reshape(x.shape)


DIRECT_KERNEL_TAPS = 49  # up to 7x7 a direct sum is cheaper than the FFT


def defocus_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Correlate each channel with the original's anti-aliased disk (reflect-101 border, OpenCV's filter2D)."""
    size = x.shape[-1]
    radius, alias_sigma = C.setting(C.DEFOCUS_BLUR, size, severity)
    scale = C.pixel_scale(size)
    kernel = disk_kernel(radius * scale, alias_sigma * scale)
    if kernel.size <= DIRECT_KERNEL_TAPS:  # small kernels (32 and most 64 px): one sparse product
        return _filters.correlate(x, kernel, _filters.REFLECT_101).clamp(0, 1)
    return _filters.correlate_fft(x, kernel, _filters.REFLECT_101).clamp(0, 1)


@functools.lru_cache(maxsize=32)
def disk_kernel(radius: float, alias_sigma: float) -> np.ndarray:
    """The original's disk(): a 17x17 grid (radius <= 8) or a (2r+1)^2 grid (larger radii), 1 inside the
    disk, normalised, then cv2.GaussianBlur with a 3x3 (radius <= 8) or 5x5 kernel of `alias_sigma`,
    whose reflect-101 border folds mass back into the array: at radius 8 and 10 the kernel sums to
    1.013 and 1.011, brightening the image (Q8). Returned as float64, trimmed to its non-zero support."""
    half = 8 if radius <= 8 else math.ceil(radius)
    smoothing_radius = 1 if radius <= 8 else 2
    offsets = np.arange(-half, half + 1)
    x, y = np.meshgrid(offsets, offsets)
    disk = (x**2 + y**2 <= radius**2).astype(np.float32).astype(np.float64)
    disk /= disk.sum()
    taps = np.arange(-smoothing_radius, smoothing_radius + 1)
    smoothing = np.exp(-(taps**2) / (2 * alias_sigma**2))
    smoothing /= smoothing.sum()
    padded = np.pad(disk, smoothing_radius, mode="reflect")  # numpy's 'reflect' is reflect-101
    rows = sum(w * padded[i:i + disk.shape[0], :] for i, w in enumerate(smoothing))
    kernel = sum(w * rows[:, j:j + disk.shape[1]] for j, w in enumerate(smoothing))
    support = np.abs(offsets[np.nonzero(kernel.any(axis=0) | kernel.any(axis=1))]).max()
    return kernel[half - support:half + support + 1, half - support:half + support + 1]


def motion_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """ImageMagick's motion blur: a one-sided gaussian line kernel at a random angle in [-45, 45]."""
    size = x.shape[-1]
    radius, sigma = C.setting(C.MOTION_BLUR, size, severity)
    angle = rng.uniform("angle", (), *C.MOTION_BLUR_ANGLE, dtype=torch.float64, device=torch.device("cpu"))
    scale = C.pixel_scale(size)
    # ImageMagick returns 8-bit pixels (the PNG round trip)
    return _filters.quantize(_filters.motion_blur(x, radius * scale, sigma * scale, angle))


def zoom_factors(stop: float, step: float) -> tuple[float, ...]:
    """The original's np.arange(1, stop, step), float64 values and count as numpy makes them (Q4)."""
    return tuple(np.arange(1, stop, step).tolist())


def zoom_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """(image + its centre crops zoomed by each factor) / (factors + 1); factor 1.0 is the image itself."""
    zooms = zoom_factors(*C.setting(C.ZOOM_BLUR, x.shape[-1], severity))
    operator = _filters.zoom_average_operator(zooms, x.shape[-1], True, str(x.device))
    return _filters.linear_map(x, operator).clamp(0, 1)
