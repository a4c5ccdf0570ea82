"""Weather corruptions: snow, frost, fog, brightness and spatter (constants per resolution in constants.py).

Brightness adds a constant to V in HSV (skimage's conversion, in torch): Hendrycks & Dietterich 2019 group it
with the weather corruptions (daylight), as store.vocabulary does.

Snow, fog and spatter follow the original algorithms step by step, batched over samples:
- snow: a gaussian flake layer, zoomed, thresholded, stored as 8 bits (truncated), motion-blurred at a
  random angle in [-135, -45] degrees (ImageMagick's kernel, see _filters.motion_blur; 8-bit result),
  added with its 180-degree rotation to the image brightened toward grey * 1.5 + 0.5 (Q16).
- fog: a diamond-square plasma fractal per sample (next power of two >= size, top-left crop; amplitude
  wibble squared, normalised to [0, 1]: Q17), added and renormalised by max / (max + strength).
- spatter: the gaussian liquid layer, blurred and thresholded. Water (mode 0) reruns OpenCV's pipeline:
  Canny edges (50, 150), chamfer distance to them (OpenCV's 5x5 mask, fixed point, truncated at 20 px),
  3x3 box blur, histogram equalisation, the 3x3 emboss kernel and a last box blur give the shading of
  the drops, which are painted pale turquoise. The liquid layer becomes 8-bit as numpy's unclipped
  `astype(np.uint8)` did on x86-64: values above 1 wrap around modulo 256 (Q13), punching dark holes
  into the brightest drops. Mud (mode 1) blurs the liquid mask and paints it brown. The box blurs are
  computed in float32 without OpenCV's exact summation order, so a rounding step can differ by one level.

Frost is the approximation: the original adds a random crop of one of five photographs of frost (scaled
by 0.2 at 32 px, 0.3 at 64 px, native at 224 px), which we do not ship. `frost_textures` synthesises five
stand-ins, once, from a fixed seed, from statistics measured on the photographs (constants.py): each has
its photograph's size after the resolution's scaling (so crop positions are drawn from the same ranges),
its mean colour, its RGB covariance at that scale, and its radially averaged power spectrum (a gaussian
random field). Shapes of individual crystals are not reproduced. Weights (c0 * image + c1 * frost), the
choice of photograph (randint(5)) and the crop origin (randint(0, rows - size), the last offset never
drawn) are the original's (Q7).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from compute.corruptions import _filters
from compute.corruptions import constants as C
from compute.corruptions._random import SampleRandom

WATER_COLOUR = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD_COLOUR = (63 / 255, 42 / 255, 20 / 255)  # brown
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_EMBOSS = np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])  # the original's water shading


def snow(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Motion-blurred snow flakes over a brightened image."""
    size = x.shape[-1]
    mean, std, zoom, threshold, radius, sigma, blend = C.setting(C.SNOW, size, severity)
    scale = C.pixel_scale(size)
    flakes = rng.normal("flakes", (1, size, size), mean=mean, std=std)
    flakes = _filters.clipped_zoom(flakes, zoom)
    flakes = torch.where(flakes < threshold, torch.zeros_like(flakes), flakes)
    flakes = _filters.truncate_levels(flakes) / 255  # stored as an 8-bit image, truncated
    angle = rng.uniform("angle", (), *C.SNOW_ANGLE, dtype=torch.float64, device=torch.device("cpu"))
    flakes = _filters.quantize(_filters.motion_blur(flakes, radius * scale, sigma * scale, angle))
    grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    x = blend * x + (1 - blend) * torch.maximum(x, grey * 1.5 + 0.5)
    return (x + flakes + flakes.flip(-2, -1)).clamp(0, 1)


def frost(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """image_weight * image + frost_weight * a random crop of one of five (synthetic) frost photographs."""
    size = x.shape[-1]
    image_weight, frost_weight = C.setting(C.FROST, size, severity)
    textures, shapes = frost_textures_on(size, str(x.device))
    which = rng.integers("texture", (), 0, len(C.FROST_PHOTOS), device=x.device)  # randint(5)
    # randint(0, rows - size) and randint(0, cols - size): the last valid offset is never drawn
    spans = (shapes[which] - size).clamp(min=1).to(torch.float64)  # (N, 2)
    unit = rng.uniform("crop", (2,), dtype=torch.float64, device=x.device)
    origin = torch.floor(unit * spans).to(torch.int64)
    offsets = torch.arange(size, device=x.device)
    rows = (origin[:, 0:1] + offsets)[:, :, None]
    cols = (origin[:, 1:2] + offsets)[:, None, :]
    crops = textures[which[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (N, 3, size, size)
    return (image_weight * x + frost_weight * crops).clamp(0, 1)


@functools.lru_cache(maxsize=8)
def frost_textures_on(size: int, device: str) -> tuple[Tensor, Tensor]:
    """frost_textures copied to `device` once (up to 32 MB at 224 px)."""
    textures, shapes = frost_textures(size)
    return textures.to(device), shapes.to(device)


@functools.lru_cache(maxsize=4)
def frost_textures(size: int) -> tuple[Tensor, Tensor]:
    """The five synthetic frost photographs for images of side `size`: float32 (5, 3, rows, cols) in [0, 1]
    (8-bit levels; each texture in the top-left corner of its slot) and their (5, 2) int64 shapes.

    Photograph i is scaled as the original scaled it (FROST_PHOTO_SCALE of the base resolution, times
    size / base), so it has the published crop ranges. Its pixels are mean + L g, with L the Cholesky
    factor of the photograph's RGB covariance at that scale and g three independent unit gaussian random
    fields whose power spectrum is the photograph's (interpolated in log-log between measured bands).
    """
    base = C.base_resolution(size)
    scale = C.FROST_PHOTO_SCALE[base] * C.pixel_scale(size)
    shapes = [(round(rows * scale), round(cols * scale)) for (rows, cols), _, _ in C.FROST_PHOTOS]
    rows_max, cols_max = max(r for r, _ in shapes), max(c for _, c in shapes)
    rng = SampleRandom(seed=0, name="frost texture", sample_ids=torch.arange(len(C.FROST_PHOTOS)))
    white = rng.normal("field", (3, rows_max, cols_max), dtype=torch.float64)
    textures = torch.zeros(len(shapes), 3, rows_max, cols_max)
    band_centres = np.arange(-7.5, -1.0, 1.0)  # log2 of the measured bands' centres, cycles per native pixel
    for i, ((rows, cols), (_, mean, log_power), covariance) in enumerate(
            zip(shapes, C.FROST_PHOTOS, C.FROST_PHOTO_COVARIANCE[base], strict=True)):
        frequency = np.hypot(np.fft.fftfreq(rows)[:, None], np.fft.rfftfreq(cols)[None, :])
        native = np.log2(np.maximum(frequency * scale, 2.0**-12))
        amplitude = np.sqrt(10.0 ** np.interp(native, band_centres, log_power))
        amplitude[0, 0] = 0.0  # zero mean
        field = torch.fft.irfft2(torch.fft.rfft2(white[i, :, :rows, :cols]) * torch.from_numpy(amplitude), s=(rows, cols))
        field = (field - field.mean(dim=(1, 2), keepdim=True)) / field.std(dim=(1, 2), keepdim=True)
        colour = torch.linalg.cholesky(torch.tensor(covariance, dtype=torch.float64))
        pixels = torch.tensor(mean, dtype=torch.float64)[:, None, None] + torch.einsum("cd,dhw->chw", colour, field)
        textures[i, :, :rows, :cols] = (torch.round(pixels.clamp(0, 255)) / 255).to(torch.float32)
    return textures, torch.tensor(shapes, dtype=torch.int64)


def fog(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Add a plasma fractal haze and renormalise so the brightest value keeps its place."""
    size = x.shape[-1]
    strength, decay = C.setting(C.FOG, size, severity)
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


def brightness(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Add a constant to V in HSV."""
    hue, saturation, value = _filters.rgb_to_hsv(x)
    return _filters.hsv_to_rgb(hue, saturation, (value + C.setting(C.BRIGHTNESS, x.shape[-1], severity)).clamp(0, 1)).clamp(0, 1)


def spatter(x: Tensor, severity: int, rng: SampleRandom) -> Tensor:
    """Water drops (severities 1-3) or mud splashes (4-5) from a thresholded, blurred noise layer."""
    size = x.shape[-1]
    mean, std, sigma, threshold, intensity, mode = C.setting(C.SPATTER, size, severity)
    scale = C.pixel_scale(size)
    liquid = rng.normal("liquid", (1, size, size), mean=mean, std=std)
    liquid = _filters.gaussian_blur(liquid, sigma * scale)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mode == 0:
        colour = torch.tensor(WATER_COLOUR, dtype=x.dtype, device=x.device)[None, :, None, None]
        drops = water_drops(liquid_levels(liquid), scale)
        return (x + intensity * drops * colour).clamp(0, 1)
    colour = torch.tensor(MUD_COLOUR, dtype=x.dtype, device=x.device)[None, :, None, None]
    mud = _filters.gaussian_blur((liquid > threshold).to(x.dtype), intensity * scale)
    mud = torch.where(mud < 0.8, torch.zeros_like(mud), mud)
    return (x * (1 - mud) + colour * mud).clamp(0, 1)


def liquid_levels(liquid: Tensor) -> Tensor:
    """The original's (liquid * 255).astype(np.uint8) of the non-negative liquid layer, without clipping:
    x86-64 truncates and wraps values above 255 around modulo 256 (Q13): 256.5 -> 0, 300.2 -> 44."""
    return torch.floor(liquid * 255 + _filters.TRUNCATION_SLACK).remainder(256)


def water_drops(liquid: Tensor, scale: float) -> Tensor:
    """(N, 1, H, W) drop shading in [0, 1] from the 8-bit liquid layer (values 0..255 as floats)."""
    edges = canny(liquid, low=50, high=150)
    distance = chamfer_distance(edges).clamp(max=C.SPATTER_DISTANCE_CAP * scale)
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
