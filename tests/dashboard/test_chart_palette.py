"""The method palette (dashboard.charts.palette): its ten colours stay apart under simulated colour-vision
deficiencies; no module of dashboard/ names the `method` field in a color, fill or stroke channel except
through method_colour (read from the source with ast); and each function that calls method_colour is in
METHOD_CHARTS, drawn here, with every colour channel over `method` in its spec mapping each method to its
palette colour."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl
import pytest

from dashboard.charts import matrix, overview, predictors, similarity
from dashboard.charts.palette import EXTRA_METHOD_COLOURS, METHOD_COLOURS, method_colour

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
PALETTE = DASHBOARD / "charts" / "palette.py"

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
    methods = [*METHOD_COLOURS, "quantize"]  # nine known methods and one the palette does not know
    scale = method_colour(methods).to_dict()["scale"]
    colours = scale["range"]
    assert scale["domain"] == methods and len(set(colours)) == 10
    for name, simulate in SIMULATIONS.items():
        seen = [lab(simulate @ linear(c)) for c in colours]
        closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(seen, 2))
        assert closest > 15, name  # CIE76 distance; ~2.3 is just noticeable, 15 tells categories apart


# One frame with the columns every method-coloured chart reads: a dense model, a known method and one the
# palette does not know (it takes the first extra colour).
MODELS = pl.DataFrame({
    "model_id": ["d", "b", "q"], "method": ["dense", "biprop", "quantize"], "arch": ["cnn"] * 3,
    "target_sparsity": [0.0, 0.5, 0.5], "sparsity": [0.0, 0.5, 0.5], "seed": [0, 0, 0],
    "base": [None, "d", "d"], "operation": [None, None, "int8"],
    "clean_accuracy": [0.99, 0.97, 0.98], "corruption_accuracy": [0.8, 0.7, 0.75],
    "file_bytes": [400_000, 200_000, 100_000], "latency_ms_batch1": [2.0, 1.5, 0.3],
    "latency_ms_batch256": [2.5, 1.0, 0.2],
    "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5], "projection": ["umap"] * 3,
    "group_id": [0, 1, 2], "seeds": [1, 1, 1], "images": ["clean"] * 3, "accuracy": [0.99, 0.97, 0.98],
    "low": [0.98, 0.96, 0.97], "high": [1.0, 0.98, 0.99]})
EDGES = pl.DataFrame({"source": ["d", "d"], "target": ["b", "q"], "distance": [1.0, 2.0]})
CELLS = MODELS.select("model_id", "method", "target_sparsity", pl.lit("clean").alias("corruption"),
                      pl.lit(0).alias("severity"), "accuracy")

# Every function of dashboard/ that calls method_colour, drawn from MODELS.
METHOD_CHARTS: dict[str, Callable[[], alt.TopLevelMixin]] = {
    "charts.overview.accuracy_vs_sparsity": lambda: overview.accuracy_vs_sparsity(MODELS),
    "charts.overview.group_accuracy_vs_sparsity": lambda: overview.group_accuracy_vs_sparsity(MODELS),
    "charts.overview.robustness_vs_cost": lambda: overview.robustness_vs_cost(MODELS),
    "charts.overview.lineage_tree": lambda: overview.lineage_tree(MODELS),
    "charts.similarity.model_map": lambda: similarity.model_map(MODELS, EDGES),
    "charts.predictors.predictor_scatter": lambda: predictors.predictor_scatter(MODELS, "x", "y", "x", "y", "t"),
    "charts.matrix.by_method": lambda: matrix.by_method(matrix.evaluation_matrix(CELLS, "accuracy", "accuracy",
                                                                                 ["clean"], domain=(0, 1))),
}
# The charts the issue names (#29): each is one of METHOD_CHARTS, and METHOD_CHARTS holds nothing else.
NAMED_CHARTS = {"overview": "charts.overview.accuracy_vs_sparsity",
                "overview per group": "charts.overview.group_accuracy_vs_sparsity",
                "cost": "charts.overview.robustness_vs_cost", "lineage": "charts.overview.lineage_tree",
                "matrix legend": "charts.matrix.by_method", "predictors": "charts.predictors.predictor_scatter",
                "similarity": "charts.similarity.model_map"}


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(DASHBOARD.rglob("*.py")):
        if path != PALETTE:
            name = ".".join(path.relative_to(DASHBOARD).with_suffix("").parts)
            yield name, ast.parse(path.read_text(), str(path))


def names_method(node: ast.expr) -> bool:
    """Whether an encoding argument names the `method` field: "method", "method:N", or alt.Color("method")
    / alt.Color(field="method") and the like."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(":")[0] == "method"
    if isinstance(node, ast.Call):
        return any(names_method(arg) for arg in node.args[:1]) or any(
            k.arg in ("field", "shorthand") and names_method(k.value) for k in node.keywords)
    return False


def test_no_module_colours_by_method_but_through_the_palette() -> None:
    channels = ("color", "fill", "stroke")
    found = []
    for name, tree in modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("Color", "Fill", "Stroke") and names_method(node):
                found.append(f"{name}:{node.lineno}")
            found += [f"{name}:{node.lineno}" for k in node.keywords if k.arg in channels and names_method(k.value)]
        for node in ast.walk(tree):  # {"color": "method:N"} as an encoding dict
            if isinstance(node, ast.Dict):
                found += [f"{name}:{node.lineno}" for k, v in zip(node.keys, node.values, strict=True)
                          if isinstance(k, ast.Constant) and k.value in channels and names_method(v)]
    assert not found, f"colour by method without dashboard.charts.palette.method_colour at {found}"


def test_every_function_that_calls_the_palette_is_drawn_here() -> None:
    callers = set()
    for name, tree in modules():
        for function in tree.body:
            if isinstance(function, ast.FunctionDef) and any(
                    isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
                    in ("method_colour", "method_colours") for node in ast.walk(function)):
                callers.add(f"{name}.{function.name}")
    assert callers == set(METHOD_CHARTS)


def method_channels(spec: object) -> Iterator[dict]:
    """Every color / fill / stroke channel over the field `method` anywhere in a Vega-Lite spec."""
    if isinstance(spec, dict):
        encoding = spec.get("encoding", {})
        for channel in ("color", "fill", "stroke"):
            if isinstance(encoding.get(channel), dict) and encoding[channel].get("field") == "method":
                yield encoding[channel]
        for value in spec.values():
            yield from method_channels(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from method_channels(value)


def method_titles(spec: object) -> Iterator[tuple[str, str]]:
    """(method, colour) of every coloured title in a Vega-Lite spec (by_method's blocks, titled by method)."""
    if isinstance(spec, dict):
        title = spec.get("title")
        if isinstance(title, dict) and "color" in title:
            yield title["text"], title["color"]
        for value in spec.values():
            yield from method_titles(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from method_titles(value)


def test_every_named_chart_is_drawn_here() -> None:
    assert set(NAMED_CHARTS.values()) == set(METHOD_CHARTS)


@pytest.mark.parametrize("chart", list(METHOD_CHARTS))
def test_a_chart_coloured_by_method_gives_each_method_its_palette_colour(chart: str) -> None:
    spec = METHOD_CHARTS[chart]().to_dict()
    channels, titles = list(method_channels(spec)), dict(method_titles(spec))
    assert channels or titles, f"{chart} has no colour channel or title over method"
    expected = {**METHOD_COLOURS, "quantize": EXTRA_METHOD_COLOURS[0]}
    assert titles == {} or titles == {m: expected[m] for m in MODELS["method"]}
    for channel in channels:
        scale = channel.get("scale")
        assert scale, f"{chart} colours methods without a scale"
        assert set(scale["domain"]) == set(MODELS["method"])
        assert dict(zip(scale["domain"], scale["range"], strict=True)) == {m: expected[m] for m in scale["domain"]}
