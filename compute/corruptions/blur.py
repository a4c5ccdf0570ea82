"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur.

Pixel-unit constants (sigmas, radii, shifts) are those of CIFAR-10-C for 32x32 images and are scaled by
size / 32 for other sizes; zoom factors are unitless.

Glass blur is the one sequential algorithm: the original walks the image from the bottom-right corner
and swaps each pixel with a random neighbour up to `max_shift` pixels away, so a pixel can be carried
across several positions in one sweep. We reproduce the sweep exactly, not approximately: two steps
only interact when their neighbourhoods overlap, and with the schedule time(h, w) = 2*max_shift*(last -
h) + (last - w) every pair of overlapping steps keeps its original order while the steps that share a
time touch disjoint pixels. So the 900 sequential swaps of a 32x32 image become 88 batched
gather/scatter rounds per iteration, with the same result as the loop (tests check this).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from compute.corruptions import _filters
from compute.corruptions._random import SampleRandom

GAUSSIAN_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)
# (sigma, max pixel shift, iterations)
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
# (disk radius, anti-alias gaussian sigma)
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
# (radius, sigma) of the line kernel; the angle is uniform in MOTION_BLUR_ANGLE degrees
MOTION_BLUR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
MOTION_BLUR_ANGLE = (-45.0, 45.0)
# zoom factors 1.00, 1.01, ..., ZOOM_BLUR_LAST
ZOOM_BLUR_LAST = (1.05, 1.10, 1.15, 1.20, 1.25)
ZOOM_BLUR_STEP = 0.01


def gaussian_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Gaussian blur of each channel (edge border, kernel truncated at 4 sigma)."""
    return _filters.gaussian_blur(x, GAUSSIAN_BLUR_SIGMA[severity - 1] * _filters.pixel_scale(x)).clamp(0, 1)


def glass_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Blur, locally swap pixels with random neighbours (the sweep repeated `iterations` times), blur."""
    sigma, max_shift, iterations = GLASS_BLUR[severity - 1]
    scale = _filters.pixel_scale(x)
    sigma *= scale
    max_shift = max(1, round(max_shift * scale))
    # The original stores the first blur as uint8, which truncates.
    blurred = torch.floor(_filters.gaussian_blur(x, sigma).clamp(0, 1) * 255 + 1e-4) / 255
    visited = len(sweep_order(x.shape[-1], max_shift, str(x.device))[0])
    # numpy's randint(-max_shift, max_shift) per visited pixel and direction, drawn in sweep order
    shifts = rng.integers("shifts", (iterations, visited, 2), -max_shift, max_shift, device=x.device)
    swapped = local_pixel_swaps(blurred, shifts, max_shift)
    return _filters.gaussian_blur(swapped, sigma).clamp(0, 1)


def local_pixel_swaps(x: Tensor, shifts: Tensor, max_shift: int) -> Tensor:
    """The original's sweeps: for h (outer loop), then w, from size - max_shift down to max_shift + 1,
    swap pixel (h, w) with (h + row shift, w + column shift), shifts in [-max_shift, max_shift).

    `shifts` is (N, iterations, visited pixels, 2) with (row, column) shifts listed in the order of
    `sweep_order`. Computed in wavefront order, which gives the sequential loop's result. The pixels
    are kept in that order, as rows of a (pixels, N * C) table, so each time step is a contiguous
    slice and only the swap partners need a gather.
    """
    n, channels, size, _ = x.shape
    visited_positions, order, slices = sweep_order(size, max_shift, str(x.device))
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=x.device)
    partners = visited_positions + shifts[..., 0] * size + shifts[..., 1]  # (N, iterations, visited)
    partner_rank = rank.index_select(0, partners.reshape(-1)).reshape(partners.shape)
    # index (iterations, visited, N * C): the partner's row, for every sample and channel column
    partner_rank = partner_rank.permute(1, 2, 0).repeat_interleave(channels, dim=2)
    state = x.reshape(n * channels, size * size).T.contiguous().index_select(0, order)
    for iteration in range(shifts.shape[1]):
        for start, stop in slices:
            partner = partner_rank[iteration, start:stop]
            here = state[start:stop].clone()
            state[start:stop] = torch.gather(state, 0, partner)
            state.scatter_(0, partner, here)
    return state.index_select(0, rank).T.reshape(x.shape)


@functools.lru_cache(maxsize=16)
def sweep_order(size: int, max_shift: int, device: str) -> tuple[Tensor, Tensor, tuple[tuple[int, int], ...]]:
    """The glass-blur sweep in wavefront order: the visited flat positions sorted by time (the original
    visiting order within a time), all positions (visited, then the unvisited border), and the
    (start, stop) slice of each time step.

    Wavefront time(h, w) = 2 * max_shift * (last - h) + (last - w): steps whose neighbourhoods
    overlap keep their original order, steps of equal time touch disjoint pixels.
    """
    last = size - max_shift
    visited = np.arange(last, max_shift, -1)
    h, w = np.meshgrid(visited, visited, indexing="ij")
    time = (2 * max_shift * (last - h) + (last - w)).reshape(-1)
    flat = (h * size + w).reshape(-1)
    by_time = flat[np.argsort(time, kind="stable")]
    unvisited = np.setdiff1d(np.arange(size * size), flat)
    ends = np.cumsum(np.bincount(time))
    slices = tuple(zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True))
    return (torch.as_tensor(by_time, device=device),
            torch.as_tensor(np.concatenate([by_time, unvisited]), device=device), slices)


def defocus_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Convolve each channel with a normalised disk, anti-aliased by a small gaussian (reflect border)."""
    radius, alias_sigma = DEFOCUS_BLUR[severity - 1]
    scale = _filters.pixel_scale(x)
    kernel = _disk_kernel(radius * scale, alias_sigma * scale, scale)
    return _filters.correlate(x, kernel, _filters.REFLECT_101).clamp(0, 1)


@functools.lru_cache(maxsize=32)
def _disk_kernel(radius: float, alias_sigma: float, scale: float) -> np.ndarray:
    """The original's disk(): pixels within `radius` on a 17x17 grid (at 32 px), normalised, then
    smoothed by a 3x3 gaussian of `alias_sigma` (OpenCV's GaussianBlur); trimmed to its support."""
    half = max(round(8 * scale), math.ceil(radius))
    offsets = np.arange(-half, half + 1)
    x, y = np.meshgrid(offsets, offsets)
    disk = (x**2 + y**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    smoothing_radius = max(1, round(scale))
    smoothing = np.exp(-np.arange(-smoothing_radius, smoothing_radius + 1) ** 2 / (2 * alias_sigma**2))
    smoothing /= smoothing.sum()
    padded = np.pad(disk, smoothing_radius, mode="reflect")  # numpy's 'reflect' is reflect-101
    rows = sum(w * padded[i:i + disk.shape[0], :] for i, w in enumerate(smoothing))
    kernel = sum(w * rows[:, j:j + disk.shape[1]] for j, w in enumerate(smoothing))
    support = np.abs(offsets[np.nonzero(kernel.any(axis=0) | kernel.any(axis=1))]).max()
    return kernel[half - support:half + support + 1, half - support:half + support + 1]


def motion_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """ImageMagick's motion blur: a one-sided gaussian line kernel at a random angle in [-45, 45]."""
    radius, sigma = MOTION_BLUR[severity - 1]
    angle = rng.uniform("angle", (), *MOTION_BLUR_ANGLE, dtype=torch.float64, device=torch.device("cpu"))
    scale = _filters.pixel_scale(x)
    return _filters.motion_blur(x, radius * scale, sigma * scale, angle).clamp(0, 1)


def zoom_blur(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Average of the image and its centre crops zoomed by 1.00, 1.01, ..., up to the severity's factor."""
    steps = round((ZOOM_BLUR_LAST[severity - 1] - 1) / ZOOM_BLUR_STEP)
    zooms = [1 + i * ZOOM_BLUR_STEP for i in range(steps + 1)]  # numpy.arange's values
    operator = _filters.zoom_average_operator(tuple(zooms), x.shape[-1], True, str(x.device))
    return _filters.linear_map(x, operator).clamp(0, 1)
