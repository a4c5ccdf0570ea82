"""Every corruption constant, one table per corruption keyed by the resolution it was published at.

Tables give severities 1..5 for the three resolutions of the published benchmarks: 32 px (CIFAR-10-C,
`make_cifar_c.py`), 64 px (Tiny-ImageNet-C, `make_tinyimagenet_c.py`) and 224 px (ImageNet-C,
`make_imagenet_c.py`); the values are those of reference/benchmarks.md section 2 and cifar10c.md.

Other sizes (the size rule): an image of side S uses the table of the published resolution nearest to S
in ratio (32 below 45 px, 64 below 120 px, 224 above; the boundaries are the geometric means), and every
constant measured in pixels (blur sigmas and radii, motion radii, glass-blur shifts, elastic alpha, sigma
and jitter, the frost photographs' scale, the spatter distance cap) is multiplied by S / base.
Intensities, probabilities, zoom factors and qualities are unitless and used as they are.
"""

from __future__ import annotations

import math
from typing import TypeVar

RESOLUTIONS = (32, 64, 224)
MIN_SIZE = 32

T = TypeVar("T")


def base_resolution(size: int) -> int:
    """The published resolution whose constants a square image of side `size` uses (nearest in ratio)."""
    return min(RESOLUTIONS, key=lambda base: abs(math.log2(size / base)))


def pixel_scale(size: int) -> float:
    """How much larger the image is than its base resolution; pixel-unit constants scale by this."""
    return size / base_resolution(size)


def setting(table: dict[int, tuple[T, ...]], size: int, severity: int) -> T:
    """The table's entry for the image size (by the size rule) and severity 1..5."""
    return table[base_resolution(size)][severity - 1]


# --- noise (intensities, no pixel units) ---------------------------------------------------------------
GAUSSIAN_NOISE_STD = {32: (0.04, 0.06, 0.08, 0.09, 0.10), 64: (0.04, 0.08, 0.12, 0.15, 0.18),
                      224: (0.08, 0.12, 0.18, 0.26, 0.38)}
SHOT_NOISE_PHOTONS = {32: (500, 250, 100, 75, 50), 64: (250, 100, 50, 30, 15), 224: (60, 25, 12, 5, 3)}
IMPULSE_NOISE_AMOUNT = {32: (0.01, 0.02, 0.03, 0.05, 0.07), 64: (0.01, 0.02, 0.05, 0.08, 0.14),
                        224: (0.03, 0.06, 0.09, 0.17, 0.27)}
SPECKLE_NOISE_STD = {32: (0.06, 0.10, 0.12, 0.16, 0.20), 64: (0.15, 0.20, 0.25, 0.30, 0.35),
                     224: (0.15, 0.20, 0.35, 0.45, 0.60)}

# --- blur ---------------------------------------------------------------------------------------------
GAUSSIAN_BLUR_SIGMA = {32: (0.4, 0.6, 0.7, 0.8, 1.0), 64: (0.5, 0.75, 1.0, 1.25, 1.5), 224: (1, 2, 3, 4, 6)}
# (sigma, max shift, iterations)
GLASS_BLUR = {
    32: ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    64: ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
    224: ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
}
# (disk radius, anti-alias gaussian sigma)
DEFOCUS_BLUR = {
    32: ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    64: ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    224: ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
}
# (radius, sigma) of ImageMagick's motion blur; the angle is uniform in MOTION_BLUR_ANGLE degrees
MOTION_BLUR = {
    32: ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    64: ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    224: ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
}
MOTION_BLUR_ANGLE = (-45.0, 45.0)
# zoom factors np.arange(1, stop, step), as the original wrote them: (stop, step). numpy yields one factor
# more than the stop suggests for (1.06, .01) and (1.11, .01): 1.06 and 1.11 are included (Q4).
ZOOM_BLUR = {
    32: ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
    64: ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
    224: ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
}

# --- weather ------------------------------------------------------------------------------------------
# (flake mean, flake std, zoom, threshold, motion radius, motion sigma, image blend)
SNOW = {
    32: ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    64: ((0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)),
    224: ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
          (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
}
SNOW_ANGLE = (-135.0, -45.0)
# (image weight, frost weight) on 0..255 values
FROST = {
    32: ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    64: ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
    224: ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
}
# How the original scaled the frost photographs (cv2.resize) before cropping.
FROST_PHOTO_SCALE = {32: 0.2, 64: 0.3, 224: 1.0}
# (strength, wibble decay) of the plasma fractal
FOG = {
    32: ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    64: ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
    224: ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
}
# (mean, std, blur sigma, threshold, intensity, mode): mode 0 water, mode 1 mud (whose blur sigma is
# the intensity column, as in the original)
SPATTER = {
    32: ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
         (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    64: ((0.62, 0.1, 0.7, 0.7, 0.6, 0), (0.65, 0.1, 0.8, 0.7, 0.6, 0), (0.65, 0.3, 1, 0.69, 0.6, 0),
         (0.65, 0.1, 0.7, 0.68, 0.6, 1), (0.65, 0.1, 0.5, 0.67, 0.6, 1)),
    224: ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
          (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
}
SPATTER_DISTANCE_CAP = 20  # pixels (cv2.threshold(dist, 20, 20, THRESH_TRUNC)), the same at every resolution

# --- digital ------------------------------------------------------------------------------------------
BRIGHTNESS = {32: (0.05, 0.10, 0.15, 0.20, 0.30), 64: (0.1, 0.2, 0.3, 0.4, 0.5), 224: (0.1, 0.2, 0.3, 0.4, 0.5)}
CONTRAST = {32: (0.75, 0.50, 0.40, 0.30, 0.15), 64: (0.4, 0.3, 0.2, 0.1, 0.05), 224: (0.4, 0.3, 0.2, 0.1, 0.05)}
# (saturation factor, saturation offset)
SATURATE = {
    32: ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    64: ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),
    224: ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
}
JPEG_QUALITY = {32: (80, 65, 58, 50, 40), 64: (65, 58, 50, 40, 25), 224: (25, 18, 15, 10, 7)}
# box-downsample to int(size * c), then back up
PIXELATE = {32: (0.95, 0.90, 0.85, 0.75, 0.65), 64: (0.9, 0.8, 0.7, 0.6, 0.5), 224: (0.6, 0.5, 0.4, 0.3, 0.25)}
# (alpha, sigma, affine jitter) in pixels. The 224-px tuples are multiples of 244, not 224: the original's
# typo, kept by its authors ("nothing is incorrect"), so the published pixels have it (Q9).
ELASTIC_TRANSFORM = {
    32: ((0, 0, 2.56), (1.6, 6.4, 2.24), (2.56, 1.92, 1.92), (3.2, 1.28, 1.6), (3.2, 0.96, 0.96)),
    64: ((0, 0, 5.12), (3.2, 19.2, 3.84), (6.4, 5.12, 3.84), (6.4, 1.92, 1.92), (10.24, 1.92, 1.28)),
    224: ((244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2), (244 * 0.05, 244 * 0.01, 244 * 0.02),
          (244 * 0.07, 244 * 0.01, 244 * 0.02), (244 * 0.12, 244 * 0.01, 244 * 0.02)),
}

# --- storage ------------------------------------------------------------------------------------------
# Tiny-ImageNet-C and ImageNet-C store every corrupted image as a JPEG of quality 85 (Pillow, 4:2:0);
# CIFAR-10-C stores raw uint8 (Q10). None: no JPEG.
STORED_JPEG_QUALITY = {32: None, 64: 85, 224: 85}

# --- frost photographs, as statistics --------------------------------------------------------------------
# We cannot ship the photographs (frost1.png .. frost5.jpg of hendrycks/robustness; frost6 is never drawn,
# Q7), so weather.frost_textures synthesises stand-ins from statistics measured on them (cv2.imread, RGB):
# native size (rows, cols), mean RGB, and log10 of the radially averaged power spectrum of the grey image
# in the frequency bands [2^-8, 2^-7), ..., [2^-2, 2^-1) cycles per native pixel.
FROST_PHOTOS = (
    ((600, 900), (77.7, 149.1, 165.7), (5.364, 4.693, 3.867, 3.074, 2.604, 2.361, 1.865)),
    ((315, 560), (200.8, 205.4, 214.5), (5.507, 4.814, 4.266, 3.733, 3.164, 2.594, 1.919)),
    ((315, 560), (200.8, 205.4, 214.5), (5.507, 4.814, 4.266, 3.733, 3.164, 2.594, 1.919)),
    ((350, 527), (137.6, 152.8, 165.2), (5.152, 4.571, 4.145, 3.843, 3.396, 2.983, 2.373)),
    ((495, 660), (112.4, 123.4, 134.8), (6.047, 5.408, 4.982, 4.362, 3.760, 3.147, 2.514)),
)
# RGB covariance (0..255 units) of each photograph after the resolution's cv2.resize (FROST_PHOTO_SCALE).
FROST_PHOTO_COVARIANCE = {
    32: (((719.0, 362.5, 235.4), (362.5, 270.3, 234.8), (235.4, 234.8, 234.4)),
         ((458.0, 471.2, 478.6), (471.2, 489.3, 497.1), (478.6, 497.1, 510.2)),
         ((458.0, 471.2, 478.6), (471.2, 489.3, 497.1), (478.6, 497.1, 510.2)),
         ((838.6, 836.8, 867.7), (836.8, 839.1, 869.4), (867.7, 869.4, 913.2)),
         ((1965.1, 1912.5, 1838.5), (1912.5, 1863.5, 1792.9), (1838.5, 1792.9, 1728.0))),
    64: (((645.6, 325.8, 211.3), (325.8, 244.1, 212.6), (211.3, 212.6, 212.8)),
         ((410.3, 423.2, 430.5), (423.2, 440.8, 448.6), (430.5, 448.6, 461.5)),
         ((410.3, 423.2, 430.5), (423.2, 440.8, 448.6), (430.5, 448.6, 461.5)),
         ((693.7, 692.3, 726.4), (692.3, 694.8, 728.4), (726.4, 728.4, 774.0)),
         ((1784.5, 1731.9, 1658.2), (1731.9, 1682.9, 1612.6), (1658.2, 1612.6, 1547.9))),
    224: (((724.3, 365.2, 237.0), (365.2, 271.4, 235.6), (237.0, 235.6, 235.0)),
          ((456.5, 469.8, 477.5), (469.8, 487.8, 496.1), (477.5, 496.1, 509.5)),
          ((456.5, 469.8, 477.5), (469.8, 487.8, 496.1), (477.5, 496.1, 509.5)),
          ((811.1, 809.5, 842.9), (809.5, 811.9, 844.7), (842.9, 844.7, 891.4)),
          ((1973.3, 1920.5, 1846.5), (1920.5, 1871.4, 1800.8), (1846.5, 1800.8, 1735.9))),
}
