"""The method palette: ten colours that stay apart for readers with a colour-vision deficiency, and every
chart that colours by method takes them from dashboard.charts.method_colour."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from dashboard import charts

# Machado, Oliveira & Fernandes (2009), severity 1.0, applied to linear RGB.
SIMULATIONS = {
    "normal vision": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])


def linear(colour: str) -> np.ndarray:
    value = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of a linear RGB colour."""
    xyz = SRGB_TO_XYZ @ np.clip(rgb, 0, 1) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_ten_method_colours_stay_apart_under_every_colour_vision_deficiency() -> None:
    methods = [*charts.METHOD_COLOURS, "quantize"]  # nine known methods and one the palette does not know
    scale = charts.method_colour(methods).to_dict()["scale"]
    colours = scale["range"]
    assert scale["domain"] == methods and len(set(colours)) == 10
    for name, simulate in SIMULATIONS.items():
        seen = [lab(simulate @ linear(c)) for c in colours]
        closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(seen, 2))
        assert closest > 15, name  # CIE76 distance; ~2.3 is just noticeable, 15 tells categories apart


def test_charts_coloured_by_method_use_the_palette() -> None:
    points = pl.DataFrame({"model_id": ["a", "b"], "method": ["dense", "biprop"], "target_sparsity": [0.0, 0.5],
                           "x": [1.0, 2.0], "y": [0.5, 0.6]})
    spec = charts.predictor_scatter(points, "x", "y", "x", "y", "t").to_dict()
    assert spec["encoding"]["color"]["scale"]["range"] == [charts.METHOD_COLOURS["dense"], charts.METHOD_COLOURS["biprop"]]
