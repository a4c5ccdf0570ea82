"""Digital corruptions: contrast, elastic transform, pixelate, JPEG and saturate.

- saturate changes S in HSV (skimage's conversion, in torch; weather.brightness changes V the same way).
- contrast scales each channel's deviation from its own mean.
- elastic_transform: a random affine map of three anchor points (OpenCV's warpAffine, reflect-101
  border), then a displacement field of gaussian-smoothed uniform noise (scipy's map_coordinates,
  order 1, 'reflect' border). Both resamplings use exact bilinear weights where OpenCV rounds them to
  1/32 pixel. Its constants are in pixels (at 224 px multiples of 244, the original's typo, Q9);
  the anchors are centre +- size // 3 of the actual image.
- pixelate reproduces Pillow's BOX resize (down to int(size * c), back up) with its 8-bit rounding
  between the passes, so it equals PIL's output to the bit (tests check it).
- jpeg_compression encodes and decodes with libjpeg at the severity's quality, through torchvision's
  batched encode_jpeg/decode_jpeg on the CPU (a loop over images inside C++, about 0.15 ms per image;
  3x faster than a Python loop over Pillow, and the same bytes as Pillow's encoder: tests check it).
  CUDA tensors are encoded on the CPU too, since nvjpeg's encoder does not produce libjpeg's bytes.
  torchvision 0.29 deprecates these codecs in favour of TorchCodec; when they go, a loop over Pillow
  (0.5 ms per image) gives the same images.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from compute.corruptions import _filters
from compute.corruptions import constants as C
from compute.corruptions._random import SampleRandom


def saturate(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """S in HSV -> S * factor + offset, clipped: desaturates at severities 1-2, oversaturates at 3-5."""
    factor, offset = C.setting(C.SATURATE, x.shape[-1], severity)
    hue, saturation, value = _filters.rgb_to_hsv(x)
    return _filters.hsv_to_rgb(hue, (saturation * factor + offset).clamp(0, 1), value).clamp(0, 1)


def contrast(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """(x - channel mean) * c + channel mean, the mean taken over each image's pixels."""
    # float64 sums of 8-bit levels are exact, so the mean does not depend on the summation order
    means = x.to(torch.float64).mean(dim=(2, 3), keepdim=True).to(x.dtype)
    return ((x - means) * C.setting(C.CONTRAST, x.shape[-1], severity) + means).clamp(0, 1)


def elastic_transform(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Random affine jitter of three anchor points, then a smooth random displacement field."""
    n, _, size, _ = x.shape
    alpha, sigma, jitter = (value * C.pixel_scale(size) for value in C.setting(C.ELASTIC_TRANSFORM, size, severity))
    rows, cols = _inverse_affine_grid(rng, size, jitter, x.device)
    warped = _filters.sample_bilinear(x, rows, cols, _filters.REFLECT_101)
    if alpha == 0:  # severity 1: no displacement field (the original multiplies it by 0)
        return warped.clamp(0, 1)
    noise = rng.uniform("displacement", (2, size, size), -1.0, 1.0)
    displacement = _filters.gaussian_blur(noise, sigma, _filters.SYMMETRIC, truncate=3.0) * alpha
    grid = torch.arange(size, dtype=torch.float32, device=x.device)
    rows = grid[None, :, None] + displacement[:, 1]
    cols = grid[None, None, :] + displacement[:, 0]
    return _filters.sample_bilinear(warped, rows, cols, _filters.SYMMETRIC).clamp(0, 1)


def _inverse_affine_grid(rng: SampleRandom, size: int, jitter: float,
                         device: torch.device) -> tuple[Tensor, Tensor]:
    """Source (row, col) of every output pixel under the per-sample random affine map, float32 (N, H, W).

    The map sends the anchors (c+s, c+s), (c+s, c-s), (c-s, c-s) (x, y order; c = size // 2, s = size // 3)
    to themselves plus uniform(-jitter, jitter); warpAffine samples the source at the inverse map.
    """
    centre, half = float(size // 2), float(size // 3)
    anchors = torch.tensor([[centre + half, centre + half], [centre + half, centre - half],
                            [centre - half, centre - half]], dtype=torch.float64)
    moved = anchors + rng.uniform("affine", (3, 2), -jitter, jitter, dtype=torch.float64,
                                  device=torch.device("cpu"))
    # Solve [x y 1] @ M^T = moved for the 3x2 matrix M^T, with explicit products (batch-independent).
    solve = torch.linalg.inv(torch.cat([anchors, torch.ones(3, 1, dtype=torch.float64)], dim=1))
    coefficients = sum(solve[None, :, j, None] * moved[:, None, j, :] for j in range(3))  # (N, 3, 2)
    a, c = coefficients[:, 0, 0], coefficients[:, 0, 1]  # x' = a x + b y + tx, y' = c x + d y + ty
    b, d = coefficients[:, 1, 0], coefficients[:, 1, 1]
    tx, ty = coefficients[:, 2, 0], coefficients[:, 2, 1]
    determinant = a * d - b * c
    params = torch.stack([d / determinant, -b / determinant, -c / determinant, a / determinant, tx, ty], dim=1)
    inv_a, inv_b, inv_c, inv_d, tx, ty = params.to(device, torch.float32)[:, :, None, None].unbind(1)
    grid = torch.arange(size, dtype=torch.float32, device=device)
    u = grid[None, None, :] - tx  # output x (column) minus translation
    v = grid[None, :, None] - ty  # output y (row)
    return inv_c * u + inv_d * v, inv_a * u + inv_b * v


def pixelate(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Pillow's BOX resize down to int(size * c) pixels and back up, with Pillow's 8-bit rounding.

    Pillow shrinks the width, rounds to 8 bits, then the height, and rounds again; each output is the
    mean of the input pixels whose centres fall in its box (1 or 2 of them here), rounded half up.
    Enlarging with BOX copies the one pixel under each output centre.
    """
    size = x.shape[-1]
    small = int(size * C.setting(C.PIXELATE, size, severity))
    device = str(x.device)
    levels = torch.round(x.clamp(0, 1) * 255)
    sums, counts = _box_shrink(size, small, True, device)
    levels = torch.floor(_filters.linear_map(levels, sums, (size, small)) / counts + 0.5)
    sums, counts = _box_shrink(size, small, False, device)
    levels = torch.floor(_filters.linear_map(levels, sums, (small, small)) / counts + 0.5)
    return _filters.linear_map(levels, _box_enlarge(small, size, device)) / 255


def _box_weights(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's BOX filter taps (precompute_coeffs): 1 where an input pixel centre is in the output's box."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    weights = np.zeros((out_size, in_size))
    for out in range(out_size):
        centre = (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), in_size)
        for source in range(first, stop):
            weights[out, source] = float(-0.5 < (source - centre + 0.5) / filter_scale <= 0.5)
    return weights


@functools.lru_cache(maxsize=32)
def _box_shrink(size: int, small: int, width_pass: bool, device: str) -> tuple[Tensor, Tensor]:
    """The sum-of-taps operator of one shrinking pass of a square image, and each output's tap count
    (sums of 8-bit levels are exact in float32, whatever their order)."""
    taps = _box_weights(size, small)
    counts = torch.as_tensor(taps.sum(axis=1), dtype=torch.float32, device=device)
    if width_pass:  # rows kept, columns shrunk
        return _filters.compile_operator(_filters.operator_from_axes(np.eye(size), taps), torch.float32,
                                         device), counts[None, None, None, :]
    return _filters.compile_operator(_filters.operator_from_axes(taps, np.eye(small)), torch.float32,
                                     device), counts[None, None, :, None]


@functools.lru_cache(maxsize=32)
def _box_enlarge(small: int, size: int, device: str) -> Tensor:
    """Enlarging with Pillow's BOX filter: each output copies the one input pixel under its centre."""
    taps = _box_weights(small, size)
    return _filters.compile_operator(_filters.operator_from_axes(taps, taps), torch.float32, device)


def jpeg_compression(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Encode as JPEG at the severity's quality and decode again (libjpeg on the CPU, as Pillow does)."""
    return jpeg_round_trip(x, C.setting(C.JPEG_QUALITY, x.shape[-1], severity))


def jpeg_round_trip(x: Tensor, quality: int) -> Tensor:
    """Encode the 8-bit image (truncated, as the original's np.uint8 before Image.fromarray) as JPEG at
    `quality` with libjpeg's defaults (4:2:0, as Pillow) and decode it."""
    images = list(_filters.truncate_levels(x).to(torch.uint8).cpu())
    with warnings.catch_warnings():  # torchvision 0.29 announces TorchCodec as the codecs' successor
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = decode_jpeg(encode_jpeg(images, quality=quality))
    return torch.stack(decoded).to(x.device).to(x.dtype) / 255
