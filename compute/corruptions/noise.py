"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each draws one independent value per pixel and channel (Q12, Q18). The constants, per resolution, are in
constants.py; they are in units of intensity, so no size scaling applies.

Shot noise needs Poisson draws with means up to 500 that depend only on the sample's hashed uniforms.
The original's input is an 8-bit image, so the mean takes one of 256 values per severity: we tabulate
their exact CDFs once and invert them at the uniform (an exact sampler, so shot noise has exactly the
Poisson statistics of the original).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from compute.corruptions import constants as C
from compute.corruptions._random import SampleRandom


def gaussian_noise(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """x + N(0, std) per value, clipped."""
    std = C.setting(C.GAUSSIAN_NOISE_STD, x.shape[-1], severity)
    return (x + rng.normal("noise", tuple(x.shape[1:]), std=std)).clamp(0, 1)


def shot_noise(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Poisson(x * photons) / photons per value, clipped: photon noise of a sensor.

    x is taken in 8-bit levels, as in the original (a uint8 image divided by 255).
    """
    photons = C.setting(C.SHOT_NOISE_PHOTONS, x.shape[-1], severity)
    levels = torch.round(x.clamp(0, 1) * 255).to(torch.int64)
    uniform = rng.uniform("photons", tuple(x.shape[1:])).to(torch.float64)  # 23 bits: tails below 1e-7 unused
    counts = shot_noise_counts(levels, uniform, photons)
    return (counts.to(torch.float32) / photons).to(x.dtype).clamp(0, 1)


def impulse_noise(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """A fraction of the values (each channel on its own) set to 0 or 1, half each."""
    fraction = C.setting(C.IMPULSE_NOISE_AMOUNT, x.shape[-1], severity)
    bits = rng.bits("impulse", tuple(x.shape[1:]))
    replaced = (((bits >> 9) & 0x7FFFFF) + 0.5) * 2.0**-23 < fraction  # the word's top 23 bits
    salt = (bits & 1).to(x.dtype)  # and its lowest bit
    return torch.where(replaced, salt, x)


def speckle_noise(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """x + x * N(0, std) per value, clipped: noise that grows with the intensity."""
    std = C.setting(C.SPECKLE_NOISE_STD, x.shape[-1], severity)
    return (x + x * rng.normal("noise", tuple(x.shape[1:]), std=std)).clamp(0, 1)


def shot_noise_counts(levels: Tensor, uniform: Tensor, photons: int) -> Tensor:
    """Poisson(level / 255 * photons) draws by inverting the exact CDF at the given float64 uniforms.

    Returns the smallest k with CDF(k) >= u, as int32. A guide table (Chen and Asau's indexed search)
    gives, per level and per 1/width-wide bucket of u, the smallest k whose CDF reaches the bucket's
    lower end, which is the answer for most values; the others are found by binary search above it.
    """
    cdf, guide, width = _poisson_tables(photons, str(levels.device))
    rows = levels.reshape(-1).to(torch.int32) * width
    flat_uniform = uniform.reshape(-1)
    bucket = (flat_uniform * width).to(torch.int32)  # floor, since u > 0
    count = guide.index_select(0, rows + bucket)
    beyond = torch.nonzero(flat_uniform > cdf.index_select(0, rows + count)).reshape(-1)
    if len(beyond):  # binary search above the guide for the few values beyond it
        low, high = count[beyond] + 1, torch.full_like(beyond, width - 1, dtype=torch.int32)
        target, row = flat_uniform[beyond], rows[beyond]
        for _ in range(math.ceil(math.log2(width))):
            middle = (low + high) // 2
            above = target > cdf.index_select(0, row + middle)
            low = torch.where(above, middle + 1, low)
            high = torch.where(above, high, middle)
        count[beyond] = low
    return count.reshape(levels.shape)


@functools.lru_cache(maxsize=16)
def _poisson_tables(photons: int, device: str) -> tuple[Tensor, Tensor, int]:
    """Per 8-bit level (256 rows of `width` counts, flattened): the Poisson CDF (float64) and the guide
    table (int32: smallest k with CDF(k) >= bucket / width)."""
    width = math.ceil(photons + 12 * math.sqrt(photons) + 30)  # beyond it the CDF is 1 in float64
    mean = torch.arange(256, dtype=torch.float64)[:, None] / 255 * photons
    k = torch.arange(width, dtype=torch.float64)[None, :]
    pmf = torch.where(mean > 0, torch.exp(k * torch.log(mean) - mean - torch.lgamma(k + 1)),
                      (k == 0).to(torch.float64))  # mean 0 always gives 0
    cdf = pmf.cumsum(dim=1)
    bucket_starts = (torch.arange(width, dtype=torch.float64) / width).expand(256, width).contiguous()
    guide = torch.searchsorted(cdf, bucket_starts).clamp(max=width - 1).to(torch.int32)
    return cdf.reshape(-1).to(device), guide.reshape(-1).to(device), width
