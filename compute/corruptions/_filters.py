"""Image operations shared by the corruption families, batched over (N, C, H, W) float tensors.

A sample's result must never depend on the batch it is in: that is what makes corrupted images
reproducible from (seed, sample id). So there is no convolution or batch-wide dense matrix product
here, whose summation order can change with the batch size. The exceptions keep every image its own
computation of a fixed shape: FFTs (one transform per image, for large kernels) and dense matrix
products broadcast over the images (for separable kernels wider than a quarter of the image).
Other fixed linear filters (blurs, zooms, resizes) are sparse (H*W x H*W) operators, built once per setting (a separable filter as two passes) and applied to the
whole batch in one sparse-dense product, whose every output is its row's sum in a fixed order; at
CIFAR scale a blur, or even the 26 zooms of zoom blur, is some ten thousand non-zeros, about a
millisecond for 200 images (the tests check that batching does not change a bit). Per-sample
operations are elementwise operations, gathers of whole rows (cheap on the CPU, unlike gathers of
single values) and grid_sample for random warps, which computes each output on its own. Elementwise
work uses only single, correctly rounded operations (+, -, *, /, no fused multiply-add such as addcmul or
add(alpha=)): a CPU loop computes most elements in vector registers and a few at its ends one by one,
where the ends fall depends on the batch and thread count, and only correctly rounded operations give
the same bits both ways.

Border modes are named by what they repeat, with the library conventions the original script relied on:
    EDGE         a a | a b c   scipy 'nearest', OpenCV BORDER_REPLICATE, ImageMagick's edge pixels
    REFLECT_101  c b | a b c   OpenCV's default BORDER_REFLECT_101, scipy 'mirror'
    SYMMETRIC    b a | a b c   scipy 'reflect', OpenCV BORDER_REFLECT
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

EDGE = "edge"
REFLECT_101 = "reflect_101"
SYMMETRIC = "symmetric"


def wrap_index(index: Tensor, size: int, mode: str) -> Tensor:
    """Map integer positions, possibly outside [0, size), onto pixels inside by the border `mode`."""
    if mode == EDGE or size == 1:
        return index.clamp(0, size - 1)
    if mode == REFLECT_101:
        period = 2 * (size - 1)
        index = index.remainder(period)
        return torch.where(index >= size, period - index, index)
    if mode == SYMMETRIC:
        period = 2 * size
        index = index.remainder(period)
        return torch.where(index >= size, period - 1 - index, index)
    raise ValueError(f"unknown border mode {mode!r}; known: {EDGE}, {REFLECT_101}, {SYMMETRIC}")


def linear_map(x: Tensor, operator: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
    """Apply a fixed linear image operator (sparse, (H_out * W_out) x (H * W)) to every channel image.

    One sparse-dense product for the whole batch: each output pixel is the sum over its row of the
    operator, in the row's order, so it does not depend on the batch (checked by the tests). The
    output is square unless `out_size` says otherwise.
    """
    n, channels, height, width = x.shape
    if out_size is None:
        side = math.isqrt(operator.shape[0])
        out_size = (side, side)
    columns = x.reshape(n * channels, height * width).T.contiguous()
    return torch.sparse.mm(operator, columns).T.reshape(n, channels, *out_size)


def border_matrix(kernel: Sequence[float], size: int, mode: str) -> np.ndarray:
    """The (size, size) matrix of 1-D correlation with the odd, centred `kernel` under border `mode`."""
    radius = len(kernel) // 2
    matrix = np.zeros((size, size))
    outputs = np.arange(size)
    for tap, weight in enumerate(kernel):
        sources = wrap_index(torch.as_tensor(outputs + tap - radius), size, mode).numpy()
        np.add.at(matrix, (outputs, sources), weight)
    return matrix


def operator_from_axes(row_matrix: np.ndarray, col_matrix: np.ndarray) -> Tensor:
    """The image operator that applies `row_matrix` down the columns and `col_matrix` along the rows,
    as a float64 sparse COO tensor on the CPU: entry ((i, j), (a, b)) = row[i, a] * col[j, b]."""
    rows_out, rows_in = np.nonzero(row_matrix)
    cols_out, cols_in = np.nonzero(col_matrix)
    width_out, width_in = col_matrix.shape
    index_out = (rows_out[:, None] * width_out + cols_out[None, :]).reshape(-1)
    index_in = (rows_in[:, None] * width_in + cols_in[None, :]).reshape(-1)
    values = (row_matrix[rows_out, rows_in][:, None] * col_matrix[cols_out, cols_in][None, :]).reshape(-1)
    shape = (row_matrix.shape[0] * width_out, row_matrix.shape[1] * width_in)
    return torch.sparse_coo_tensor(np.stack([index_out, index_in]), values, shape, check_invariants=True)


def compile_operator(operator: Tensor, dtype: torch.dtype, device: str) -> Tensor:
    """A COO operator (summed duplicates) as the compressed-row sparse tensor that linear_map uses."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use only its product with a dense
        warnings.simplefilter("ignore", UserWarning)
        return operator.coalesce().to(dtype).to_sparse_csr().to(device)


@functools.lru_cache(maxsize=128)
def axis_operators(kernel: tuple[float, ...], size: int, mode: str, device: str) -> tuple[Tensor, Tensor]:
    """Correlation with `kernel` down the columns, and along the rows: the two passes of a separable
    filter (two passes of K taps each, not one of K * K)."""
    axis = border_matrix(kernel, size, mode)
    identity = np.eye(size)
    return (compile_operator(operator_from_axes(axis, identity), torch.float32, device),
            compile_operator(operator_from_axes(identity, axis), torch.float32, device))


DENSE_AXIS_FRACTION = 0.25  # a 1-D kernel wider than this fraction of the side: dense matrix products


def correlate_separable(x: Tensor, kernel: tuple[float, ...], mode: str) -> Tensor:
    """Correlate with the same odd 1-D `kernel` down the columns, then along the rows (scipy's order).

    Kernels wider than a quarter of the image (elastic's sigma 170.8 at 224 px: 1025 taps folded onto
    224 pixels) are a dense (H, H) matrix per axis, applied as matrix products of each channel image
    (broadcast, so every image is its own product of the same shape, whatever the batch).
    """
    if len(kernel) > DENSE_AXIS_FRACTION * x.shape[-1]:
        matrix = dense_axis_matrix(kernel, x.shape[-1], mode, str(x.device))
        down_columns = torch.matmul(matrix, x)
        return torch.matmul(matrix, down_columns.transpose(-1, -2)).transpose(-1, -2).contiguous()
    down_columns, along_rows = axis_operators(kernel, x.shape[-1], mode, str(x.device))
    return linear_map(linear_map(x, down_columns), along_rows)


@functools.lru_cache(maxsize=32)
def dense_axis_matrix(kernel: tuple[float, ...], size: int, mode: str, device: str) -> Tensor:
    """The (size, size) float32 matrix of 1-D correlation with `kernel` under border `mode`."""
    return torch.as_tensor(border_matrix(kernel, size, mode), dtype=torch.float32, device=device)


@functools.lru_cache(maxsize=32)
def correlation_operator(kernel: tuple[tuple[float, ...], ...], size: int, mode: str, device: str) -> Tensor:
    """2-D correlation with an odd-sized `kernel` centred on the pixel."""
    weights = np.array(kernel)
    total = None
    for i, j in zip(*np.nonzero(weights), strict=True):
        shift_rows = border_matrix([1.0 if k == i else 0.0 for k in range(weights.shape[0])], size, mode)
        shift_cols = border_matrix([1.0 if k == j else 0.0 for k in range(weights.shape[1])], size, mode)
        term = operator_from_axes(shift_rows * weights[i, j], shift_cols)
        total = term if total is None else total + term
    return compile_operator(total, torch.float32, device)


def correlate(x: Tensor, kernel: np.ndarray, mode: str) -> Tensor:
    """2-D correlation of every channel with an odd-sized `kernel` centred on the pixel."""
    key = tuple(tuple(float(w) for w in row) for row in kernel)
    return linear_map(x, correlation_operator(key, x.shape[-1], mode, str(x.device)))


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's normalised gaussian: radius int(truncate * sigma + 0.5)."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * offsets**2 / sigma**2)
    return weights / weights.sum()


def gaussian_blur(x: Tensor, sigma: float, mode: str = EDGE, truncate: float = 4.0) -> Tensor:
    """Gaussian blur of each channel, as skimage.filters.gaussian (scipy's kernel, edge border)."""
    return correlate_separable(x, tuple(gaussian_kernel(sigma, truncate).tolist()), mode)


def box_blur3(x: Tensor) -> Tensor:
    """OpenCV's cv2.blur(x, (3, 3)): mean over the 3x3 neighbourhood, reflect-101 border."""
    return correlate_separable(x, (1 / 3, 1 / 3, 1 / 3), REFLECT_101)


def transpose(x: Tensor) -> Tensor:
    """Swap rows and columns (a contiguous copy), so column work can be done as row work."""
    return x.transpose(-1, -2).contiguous()


def take_rows_per_sample(x: Tensor, rows: Tensor) -> Tensor:
    """out[n, c, i] = x[n, c, rows[n, i]] for an (N, H_out) int index: each sample its own rows.

    Gathering whole rows is cheap on the CPU (one copy of W values per index), unlike single pixels.
    """
    n, channels, height, width = x.shape
    first_row = torch.arange(n * channels, device=x.device, dtype=torch.int32).reshape(n, channels, 1) * height
    flat_rows = (first_row + rows[:, None, :]).reshape(-1)
    return x.reshape(-1, width).index_select(0, flat_rows).reshape(n, channels, rows.shape[1], width)


def sample_bilinear(x: Tensor, rows: Tensor, cols: Tensor, mode: str) -> Tensor:
    """Bilinear interpolation of x at per-sample fractional (N, H, W) coordinates, borders by `mode`.

    torch's grid_sample, whose 'reflection' padding reflects the coordinate about the outer pixel
    centres (align_corners=True: REFLECT_101) or the image edges (align_corners=False: SYMMETRIC);
    for linear interpolation that equals reflecting the neighbour indices, as OpenCV and scipy do.
    Each output is computed on its own, so the batch does not matter.
    """
    height, width = x.shape[-2:]
    if mode == REFLECT_101:
        grid = torch.stack([cols * (2 / (width - 1)) - 1, rows * (2 / (height - 1)) - 1], dim=-1)
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=True)
    padding = {SYMMETRIC: "reflection", EDGE: "border"}[mode]
    grid = torch.stack([(2 * cols + 1) / width - 1, (2 * rows + 1) / height - 1], dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode=padding, align_corners=False)


MOTION_FFT_MIN_SIZE = 100  # from this side on (the 224-px constants' 21-41 taps) the FFT is cheaper


def motion_blur(x: Tensor, radius: float, sigma: float, angle_degrees: Tensor) -> Tensor:
    """ImageMagick's MotionBlurImage: a one-sided gaussian-weighted line kernel at a per-sample angle.

    Pixel p becomes sum_i w_i * x[p + offset_i], i = 0 .. 2*ceil(radius), with w_i proportional to
    exp(-i^2 / (2 sigma^2)) and offset_i the integer-rounded point i pixels away along the angle
    (0 degrees points right, 90 down); pixels beyond the border repeat the edge. `angle_degrees` is a
    float64 (N,) tensor; the offsets are computed on the CPU so every device uses the same ones.
    Each tap shifts the rows per sample, then the columns as rows of the transposed image; the sum
    is kept transposed and turned back once. Large images use each sample's kernel through the FFT.
    """
    height, width = x.shape[-2:]
    taps = 2 * math.ceil(radius) + 1
    steps = torch.arange(taps, dtype=torch.float64)
    weights = torch.exp(-(steps**2) / (2.0 * sigma**2))
    weights = (weights / weights.sum()).tolist()
    theta = torch.deg2rad(angle_degrees.to("cpu", torch.float64))
    point_x, point_y = taps * torch.sin(theta), taps * torch.cos(theta)
    length = torch.hypot(point_x, point_y)
    col_offsets = torch.ceil(steps[None] * point_y[:, None] / length[:, None] - 0.5).to(torch.int32)
    row_offsets = torch.ceil(steps[None] * point_x[:, None] / length[:, None] - 0.5).to(torch.int32)
    if height >= MOTION_FFT_MIN_SIZE:  # long kernels on large images: per-sample kernels through the FFT
        reach = taps - 1
        kernels = np.zeros((len(theta), 2 * reach + 1, 2 * reach + 1))
        samples = np.repeat(np.arange(len(theta)), taps)
        np.add.at(kernels, (samples, reach + row_offsets.reshape(-1).numpy(), reach + col_offsets.reshape(-1).numpy()),
                  np.tile(weights, len(theta)))
        spectra = kernel_spectra_of(kernels, fft_size(height + 2 * reach), str(x.device))
        return spectral_correlate(x, spectra, reach, EDGE)
    rows = torch.arange(height, dtype=torch.int32)
    cols = torch.arange(width, dtype=torch.int32)
    # (taps, N, H) and (taps, N, W) source rows and columns, edge pixels repeated
    row_maps = (rows[None, None, :] + row_offsets.T[:, :, None]).clamp(0, height - 1).to(x.device)
    col_maps = (cols[None, None, :] + col_offsets.T[:, :, None]).clamp(0, width - 1).to(x.device)
    transposed_sum = torch.zeros_like(transpose(x))
    for i, weight in enumerate(weights):
        shifted_rows = take_rows_per_sample(x, row_maps[i])
        transposed_sum = transposed_sum + take_rows_per_sample(transpose(shifted_rows), col_maps[i]) * weight
    return transpose(transposed_sum)


def zoom_matrix(size: int, zoom: float) -> np.ndarray:
    """1-D matrix of the original's clipped_zoom: crop the centre size/zoom pixels, zoom them back with
    scipy.ndimage.zoom (order 1, corners aligned) and trim the centre `size` pixels."""
    crop = math.ceil(size / zoom)
    top = (size - crop) // 2
    zoomed = int(round(crop * zoom))  # scipy's output size (round half to even)
    trim = (zoomed - size) // 2
    coords = np.arange(trim, trim + size) * ((crop - 1) / (zoomed - 1))
    first = np.floor(coords).astype(np.int64)
    frac = coords - first
    matrix = np.zeros((size, size))
    np.add.at(matrix, (np.arange(size), top + first), 1 - frac)
    np.add.at(matrix, (np.arange(size), top + np.minimum(first + 1, crop - 1)), frac)
    return matrix


@functools.lru_cache(maxsize=32)
def zoom_average_operator(zooms: tuple[float, ...], size: int, include_image: bool, device: str) -> Tensor:
    """The mean of clipped zooms by each factor (and of the image itself when `include_image`)."""
    terms = [operator_from_axes(zoom_matrix(size, zoom), zoom_matrix(size, zoom)) for zoom in zooms]
    if include_image:
        terms.append(operator_from_axes(np.eye(size), np.eye(size)))
    return compile_operator(sum(terms[1:], terms[0]) / len(terms), torch.float32, device)


def clipped_zoom(x: Tensor, zoom: float) -> Tensor:
    """The original script's clipped_zoom of every channel image."""
    return linear_map(x, zoom_average_operator((zoom,), x.shape[-1], False, str(x.device)))


def rgb_to_hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """skimage.color.rgb2hsv on (N, 3, H, W): hue in [0, 1), saturation and value in [0, 1]."""
    red, green, blue = x[:, 0], x[:, 1], x[:, 2]
    value = x.amax(dim=1)
    delta = value - x.amin(dim=1)
    grey = delta == 0
    safe_delta = torch.where(grey, 1.0, delta)
    saturation = torch.where(grey, 0.0, delta / torch.where(grey, 1.0, value))
    # skimage assigns red, then green, then blue, so on ties the later channel wins.
    hue = torch.where(blue == value, 4.0 + (red - green) / safe_delta,
                      torch.where(green == value, 2.0 + (blue - red) / safe_delta, (green - blue) / safe_delta))
    hue = torch.where(grey, 0.0, (hue / 6.0).remainder(1.0))
    return hue, saturation, value


def hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """The inverse of rgb_to_hsv, (N, H, W) each -> (N, 3, H, W).

    Closed form: channel = V - V*S*clip(min(k, 4 - k), 0, 1) with k = (n + 6*H) mod 6 and n = 5, 3, 1
    for red, green, blue; the same values as skimage's sector table.
    """
    sixths = hue[:, None] * 6.0
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hue.dtype, device=hue.device)[None, :, None, None]
    k = (offsets + sixths).remainder(6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0, 1)
    chroma = (value * saturation)[:, None]
    return value[:, None] - chroma * ramp


# Float results within this fraction of a level above an integer count as that integer when truncated:
# float32 sums of exact levels (a flat region under a normalised kernel) can land a hair below them,
# where the original's float64 arithmetic mostly did not.
TRUNCATION_SLACK = 2.0**-10


def truncate_levels(x: Tensor) -> Tensor:
    """numpy's float -> uint8 cast of x * 255 (truncation toward zero, Q6), kept as float levels 0..255."""
    levels = x.clamp(0, 1)  # a new tensor: the rest works in place on it
    return levels.mul_(255.0).add_(TRUNCATION_SLACK).floor_().clamp_(max=255)


def correlate_fft(x: Tensor, kernel: np.ndarray, mode: str) -> Tensor:
    """2-D correlation of every channel with one odd-sized `kernel`, borders by `mode`, through the FFT.

    For the large kernels of defocus blur (up to 25x25 at 224 px) a direct sum costs hundreds of
    multiply-adds per value; the FFT a few dozen.
    """
    radius = kernel.shape[0] // 2
    if radius == 0:
        return x * float(kernel[0, 0])
    side = fft_size(x.shape[-1] + 2 * radius)
    key = tuple(map(tuple, kernel.tolist()))
    return spectral_correlate(x, kernel_spectra((key,), side, str(x.device)), radius, mode)


def spectral_correlate(x: Tensor, spectra: Tensor, radius: int, mode: str) -> Tensor:
    """Correlate (N, C, H, W) with kernels of side 2 * radius + 1 given as `spectra` ((1 or N), P, P // 2 + 1,
    from kernel_spectra): pad by `radius` with the border `mode`, multiply the spectra, transform back.

    The padding keeps the circular convolution from wrapping. Every value is one transform of one image
    and its own kernel, the same whatever the batch (the tests check the bytes); float32 transforms are
    accurate to about 1e-6, far below the truncation slack.
    """
    height, width = x.shape[-2:]
    side = 2 * (spectra.shape[-1] - 1)
    padded = pad(x, radius, mode)
    out = torch.fft.irfft2(torch.fft.rfft2(padded, s=(side, side)) * spectra[:, None], s=(side, side))
    return out[..., :height, :width].contiguous()


def fft_size(minimum: int) -> int:
    """The smallest even size >= minimum whose only prime factors are 2, 3 and 5 (fast transforms)."""
    size = minimum + minimum % 2
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 2


def kernel_spectra_of(kernels: np.ndarray, side: int, device: str) -> Tensor:
    """rfft2 of g with g[-a mod side, -b mod side] = kernel[a, b] for each (k, k) kernel in `kernels`
    (float64, (M, k, k)): the circular convolution of the padded image with g, read at [:H, :W], is the
    correlation with the kernel. Returned as complex64 (M, side, side // 2 + 1) on `device`."""
    count, size, _ = kernels.shape
    g = np.zeros((count, side, side))
    index = (-np.arange(size)) % side
    g[:, index[:, None], index[None, :]] = kernels
    return torch.fft.rfft2(torch.from_numpy(g)).to(torch.complex64).to(device)


@functools.lru_cache(maxsize=32)
def kernel_spectra(kernels: tuple[tuple[tuple[float, ...], ...], ...], side: int, device: str) -> Tensor:
    """kernel_spectra_of for fixed kernels, cached."""
    return kernel_spectra_of(np.array(kernels, dtype=np.float64), side, device)


def pad(x: Tensor, radius: int, mode: str) -> Tensor:
    """Pad the last two axes by `radius` on each side with the border `mode` (any radius)."""
    height, width = x.shape[-2:]
    if mode in (EDGE, REFLECT_101) and radius < min(height, width):
        return F.pad(x, (radius,) * 4, mode="replicate" if mode == EDGE else "reflect")
    rows = wrap_index(torch.arange(-radius, height + radius, device=x.device), height, mode)
    cols = wrap_index(torch.arange(-radius, width + radius, device=x.device), width, mode)
    return x.index_select(-2, rows).index_select(-1, cols)


def quantize(x: Tensor) -> Tensor:
    """Round to the 256 levels of a uint8 image, kept as floats in [0, 1] (where the original went 8-bit)."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0
