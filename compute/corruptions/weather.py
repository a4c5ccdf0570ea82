"""Weather corruptions: snow, frost, fog and spatter.

Snow, fog and spatter follow the original algorithms step by step, batched over samples:
- snow: a gaussian flake layer, zoomed, thresholded, stored as 8 bits, motion-blurred at a random angle
  in [-135, -45] degrees (ImageMagick's kernel, see _filters.motion_blur), added with its 180-degree
  rotation to the image brightened toward grey * 1.5 + 0.5.
- fog: a diamond-square plasma fractal per sample (next power of two >= size, cropped), added and
  renormalised by max / (max + strength).
- spatter: the gaussian liquid layer, blurred and thresholded. Water (mode 0) reruns OpenCV's pipeline:
  Canny edges (50, 150), chamfer distance to them (OpenCV's 5x5 mask, fixed point, truncated at 20 px),
  3x3 box blur, histogram equalisation, the 3x3 emboss kernel and a last box blur give the shading of
  the drops, which are painted pale turquoise. Mud (mode 1) blurs the liquid mask and paints it brown.
  Differences to OpenCV: the liquid layer is clipped to [0, 1] before it becomes 8-bit (numpy would
  wrap values above 1 around, which is a bug, not a feature), and the box blurs are computed in
  float32 without OpenCV's exact summation order, so a rounding step can differ by one level.

Frost is the approximation: the original adds a random 32x32 crop of one of five photographs of frost
(scaled by 0.2), which we do not ship. We generate five procedural frost textures instead, once, from
a fixed seed (so they are the same on every machine, like the photographs): multi-scale gaussian value
noise (24, 8 and 3 px cells plus per-pixel grain) for the crystalline grain, and short bright needles
(sparse seeds smeared along three random directions) for the ice crystals. Each texture gets the mean
colour and the within-crop contrast measured on one of the photographs (frost1 teal, frost2 and frost3
near-white, frost4 grey-blue, frost5 dark grey-blue). Severity weights (c0 * image + c1 * frost) and the
per-sample choice of texture and crop position are as in the original.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from compute.corruptions import _filters
from compute.corruptions._random import SampleRandom

# (flake mean, flake std, zoom, threshold, motion radius, motion sigma, image blend)
SNOW = (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
SNOW_ANGLE = (-135.0, -45.0)
# (image weight, frost weight)
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
# (strength, wibble decay)
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
# (mean, std, blur sigma, threshold, intensity, mode): mode 0 water, mode 1 mud
SPATTER = (
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
)
WATER_COLOUR = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD_COLOUR = (63 / 255, 42 / 255, 20 / 255)  # brown

# The frost photographs, as mean RGB colour and within-32x32-crop standard deviation of their
# 0.2-scaled versions; frost2 and frost3 are the same photograph in the original.
FROST_PALETTE = (
    ((77, 149, 166), 0.055),
    ((201, 205, 215), 0.067),
    ((201, 205, 215), 0.067),
    ((138, 153, 166), 0.10),
    ((112, 123, 135), 0.135),
)
FROST_TEXTURE_SIDE = 160  # pixels, for 32-pixel images (the scaled photographs measure 63 to 180)
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_EMBOSS = np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])  # the original's water shading


def snow(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Motion-blurred snow flakes over a brightened image."""
    mean, std, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    size = x.shape[-1]
    scale = _filters.pixel_scale(x)
    flakes = rng.normal("flakes", (1, size, size), mean=mean, std=std)
    flakes = _filters.clipped_zoom(flakes, zoom)
    flakes = torch.where(flakes < threshold, torch.zeros_like(flakes), flakes)
    flakes = torch.floor(flakes.clamp(0, 1) * 255) / 255  # stored as an 8-bit image
    angle = rng.uniform("angle", (), *SNOW_ANGLE, dtype=torch.float64, device=torch.device("cpu"))
    flakes = _filters.quantize(_filters.motion_blur(flakes, radius * scale, sigma * scale, angle))
    grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    x = blend * x + (1 - blend) * torch.maximum(x, grey * 1.5 + 0.5)
    return (x + flakes + flakes.flip(-2, -1)).clamp(0, 1)


def frost(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """image_weight * image + frost_weight * a random crop of a (procedural) frost texture."""
    image_weight, frost_weight = FROST[severity - 1]
    size = x.shape[-1]
    textures = frost_textures(size).to(x.device)
    side = textures.shape[-1]
    which = rng.integers("texture", (), 0, len(textures), device=x.device)
    top = rng.integers("top", (), 0, side - size, device=x.device)
    left = rng.integers("left", (), 0, side - size, device=x.device)
    offsets = torch.arange(size, device=x.device)
    rows = (top[:, None] + offsets)[:, :, None]
    cols = (left[:, None] + offsets)[:, None, :]
    crops = textures[which[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (N, 3, size, size)
    return (image_weight * x + frost_weight * crops).clamp(0, 1)


@functools.lru_cache(maxsize=4)
def frost_textures(size: int) -> Tensor:
    """(5, 3, side, side) float32 on the CPU, in 8-bit levels: the fixed procedural frost textures."""
    scale = size / 32
    side = round(FROST_TEXTURE_SIDE * scale)
    palette = torch.tensor([colour for colour, _ in FROST_PALETTE], dtype=torch.float64) / 255
    contrast = torch.tensor([spread for _, spread in FROST_PALETTE], dtype=torch.float64)
    rng = SampleRandom(seed=0, name="frost texture", sample_ids=torch.arange(len(FROST_PALETTE)))

    def value_noise(purpose: str, cell_pixels: float) -> Tensor:
        cell = max(1, round(cell_pixels * scale))
        grid_side = math.ceil(side / cell) + 3
        grid = rng.normal(purpose, (1, grid_side, grid_side), dtype=torch.float64)
        smooth = F.interpolate(grid, scale_factor=cell, mode="bicubic", align_corners=False)
        return smooth[:, :, cell:cell + side, cell:cell + side]

    def standardise(t: Tensor) -> Tensor:
        return (t - t.mean(dim=(1, 2, 3), keepdim=True)) / t.std(dim=(1, 2, 3), keepdim=True)

    grain = (0.6 * value_noise("grain 24", 24) + 0.5 * value_noise("grain 8", 8)
             + 0.6 * value_noise("grain 3", 3) + 0.7 * rng.normal("grain 1", (1, side, side), dtype=torch.float64))
    needles = torch.zeros_like(grain)
    for direction in range(3):
        seeds = rng.uniform(f"needle seeds {direction}", (1, side, side), dtype=torch.float64) < 0.02
        angle = rng.uniform(f"needle angle {direction}", (), 0.0, 180.0, dtype=torch.float64)
        needles = needles + _filters.motion_blur(seeds.to(torch.float64), 4 * scale, 3 * scale, angle)
    detail = standardise(standardise(grain) + 1.2 * standardise(needles))
    textures = (palette[:, :, None, None] + contrast[:, None, None, None] * detail).clamp(0, 1)
    return _filters.quantize(textures).to(torch.float32)


def fog(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Add a plasma fractal haze and renormalise so the brightest value keeps its place."""
    strength, decay = FOG[severity - 1]
    size = x.shape[-1]
    map_size = 1 << (size - 1).bit_length()
    haze = plasma_fractal(rng, map_size, decay)[:, None, :size, :size].to(x.dtype)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x + strength * haze) * peak / (peak + strength)).clamp(0, 1)


def plasma_fractal(rng: SampleRandom, map_size: int, decay: float) -> Tensor:
    """(N, map_size, map_size) float64 diamond-square heightmaps in [0, 1], one per sample.

    As the original: the corner starts at 0, every new point is the mean of its 4 neighbours plus
    wibble * uniform(-wibble, wibble), with wibble starting at 100 and divided by `decay` per level.
    """
    levels = map_size.bit_length() - 1
    # level l fills 3 kinds of point (square centres, left and top diamonds) on a 2**l x 2**l grid
    draws = rng.uniform("plasma", (3 * sum(4**level for level in range(levels)),), -1.0, 1.0, dtype=torch.float64)
    heights = torch.zeros(len(rng), map_size, map_size, dtype=torch.float64, device=rng.device)
    step, wibble, used = map_size, 100.0, 0
    for level in range(levels):
        half, cells = step // 2, 1 << level
        wobble = wibble * wibble * draws[:, used:used + 3 * cells * cells].reshape(-1, 3, cells, cells)
        used += 3 * cells * cells
        corners = heights[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, 1)
        squares = squares + squares.roll(-1, 2)
        heights[:, half::step, half::step] = squares / 4 + wobble[:, 0]
        centres = heights[:, half::step, half::step]
        left_diamonds = centres + centres.roll(1, 1) + (corners + corners.roll(-1, 2))
        heights[:, 0::step, half::step] = left_diamonds / 4 + wobble[:, 1]
        top_diamonds = centres + centres.roll(1, 2) + (corners + corners.roll(-1, 1))
        heights[:, half::step, 0::step] = top_diamonds / 4 + wobble[:, 2]
        step, wibble = half, wibble / decay
    heights = heights - heights.amin(dim=(1, 2), keepdim=True)
    return heights / heights.amax(dim=(1, 2), keepdim=True)


def spatter(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Water drops (severities 1-3) or mud splashes (4-5) from a thresholded, blurred noise layer."""
    mean, std, sigma, threshold, intensity, mode = SPATTER[severity - 1]
    size = x.shape[-1]
    scale = _filters.pixel_scale(x)
    liquid = rng.normal("liquid", (1, size, size), mean=mean, std=std)
    liquid = _filters.gaussian_blur(liquid, sigma * scale)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mode == 0:
        colour = torch.tensor(WATER_COLOUR, dtype=x.dtype, device=x.device)[None, :, None, None]
        drops = water_drops(torch.floor(liquid.clamp(0, 1) * 255), scale)
        return (x + intensity * drops * colour).clamp(0, 1)
    colour = torch.tensor(MUD_COLOUR, dtype=x.dtype, device=x.device)[None, :, None, None]
    mud = _filters.gaussian_blur((liquid > threshold).to(x.dtype), intensity * scale)
    mud = torch.where(mud < 0.8, torch.zeros_like(mud), mud)
    return (x * (1 - mud) + colour * mud).clamp(0, 1)


def water_drops(liquid: Tensor, scale: float) -> Tensor:
    """(N, 1, H, W) drop shading in [0, 1] from the 8-bit liquid layer (values 0..255 as floats)."""
    edges = canny(liquid, low=50, high=150)
    distance = chamfer_distance(edges).clamp(max=20 * scale)
    distance = torch.floor(_filters.box_blur3(distance) + 1e-4)  # OpenCV stores it as uint8
    distance = equalize_histogram(distance)
    distance = _filters.correlate(distance, _EMBOSS, _filters.REFLECT_101).clamp(0, 255)
    distance = _filters.box_blur3(distance)
    shading = liquid * distance
    peak = shading.amax(dim=(1, 2, 3), keepdim=True)
    # No liquid at all makes the original divide 0 by 0; no drops is the sensible reading.
    return torch.where(peak > 0, shading / torch.where(peak > 0, peak, 1.0), torch.zeros_like(shading))


def canny(image: Tensor, low: int, high: int) -> Tensor:
    """OpenCV's Canny (3x3 Sobel, L1 gradient) on (N, 1, H, W) 8-bit values; returns a bool edge map."""
    height, width = image.shape[-2:]
    # Sobel sums of 8-bit levels are exact integers in float32; OpenCV's Sobel repeats the edge here.
    grad_x = _filters.correlate(image, _SOBEL_X, _filters.EDGE).to(torch.int32)
    grad_y = _filters.correlate(image, _SOBEL_X.T, _filters.EDGE).to(torch.int32)
    magnitude = grad_x.abs() + grad_y.abs()
    around = F.pad(magnitude, (1, 1, 1, 1))  # zero magnitude outside the image

    def neighbour(row: int, col: int) -> Tensor:
        return around[..., 1 + row:1 + row + height, 1 + col:1 + col + width]

    # Direction by OpenCV's fixed-point tangent tests (tan 22.5 degrees in 15 fractional bits).
    abs_x, abs_y = grad_x.abs(), grad_y.abs() << 15
    tan22 = abs_x * 13573
    tan67 = tan22 + (abs_x << 16)
    horizontal = abs_y < tan22
    vertical = ~horizontal & (abs_y > tan67)
    same_sign = (grad_x ^ grad_y) >= 0
    peak_horizontal = (magnitude > neighbour(0, -1)) & (magnitude >= neighbour(0, 1))
    peak_vertical = (magnitude > neighbour(-1, 0)) & (magnitude >= neighbour(1, 0))
    peak_diagonal = torch.where(same_sign,
                                (magnitude > neighbour(-1, -1)) & (magnitude > neighbour(1, 1)),
                                (magnitude > neighbour(-1, 1)) & (magnitude > neighbour(1, -1)))
    local_peak = torch.where(horizontal, peak_horizontal, torch.where(vertical, peak_vertical, peak_diagonal))
    candidate = local_peak & (magnitude > low)
    edges = candidate & (magnitude > high)
    while True:  # hysteresis: weak candidates joined (8-connected) to a strong edge become edges
        grown = edges | (candidate & (F.max_pool2d(edges.to(torch.float32), 3, 1, 1) > 0))
        if torch.equal(grown, edges):
            return edges
        edges = grown


# OpenCV's 5x5 chamfer mask for DIST_L2 (1, 1.4, 2.1969) in its 16-bit fixed point.
_CHAMFER_MOVES = (
    [((0, 1), 65536), ((1, 0), 65536), ((0, -1), 65536), ((-1, 0), 65536)]
    + [((dr, dc), 91750) for dr in (-1, 1) for dc in (-1, 1)]
    + [((dr, dc), 143976) for dr, dc in ((1, 2), (2, 1), (-1, 2), (-2, 1), (1, -2), (2, -1), (-1, -2), (-2, -1))]
)


def chamfer_distance(edges: Tensor) -> Tensor:
    """cv2.distanceTransform(255 - edges, DIST_L2, 5): float32 distance to the nearest edge pixel.

    The shortest path over the chamfer moves, relaxed until nothing changes (the exact fixed point,
    whatever the batch); without any edge the distance is effectively infinite.
    """
    unreachable = 1 << 30
    height, width = edges.shape[-2:]
    padded = torch.full((*edges.shape[:-2], height + 4, width + 4), unreachable, dtype=torch.int32,
                        device=edges.device)
    inside = padded[..., 2:2 + height, 2:2 + width]
    inside.copy_(torch.where(edges, 0, unreachable))
    while True:
        relaxed = inside.clone()
        for (row, col), cost in _CHAMFER_MOVES:
            torch.minimum(relaxed, padded[..., 2 + row:2 + row + height, 2 + col:2 + col + width] + cost,
                          out=relaxed)
        if torch.equal(relaxed, inside):
            return relaxed.to(torch.float32) / 65536
        inside.copy_(relaxed)


def equalize_histogram(image: Tensor) -> Tensor:
    """cv2.equalizeHist per sample on (N, 1, H, W) 8-bit values held as floats."""
    n = image.shape[0]
    values = image.reshape(n, -1).to(torch.int64)
    counts = torch.zeros(n, 256, dtype=torch.int64, device=image.device)
    counts.scatter_add_(1, values, torch.ones_like(values))
    first = (counts > 0).to(torch.int64).argmax(dim=1, keepdim=True)
    first_count = counts.gather(1, first)
    total = values.shape[1]
    # OpenCV: scale = 255.f / (total - count of the lowest level), lut = round(cumulative * scale)
    scale = torch.full_like(first_count, 255, dtype=torch.float32) / (total - first_count).clamp(min=1).to(torch.float32)
    cumulative = (counts.cumsum(dim=1) - first_count).to(torch.float32)
    lut = torch.round(cumulative * scale).clamp(0, 255)
    lut = torch.where(torch.arange(256, device=image.device) <= first, 0.0, lut)
    out = lut.gather(1, values).to(image.dtype)
    # A flat image is left at its one level.
    return torch.where(first_count == total, image.reshape(n, -1), out).reshape(image.shape)
