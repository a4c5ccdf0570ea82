"""The sample page's charts: one sample under every model and setting, and its occlusion attribution maps."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import polars as pl

from dashboard.charts.common import DEGREES, setting_label, with_model_label


def sample_matrix(rows: pl.DataFrame, columns: Sequence[str]) -> alt.Chart:
    """One sample under every model (rows) and setting (columns): colour is angle_true, a cross marks a
    wrong prediction. A click selects the model and setting."""
    data = with_model_label(rows).with_columns(
        setting_label(pl.col("corruption"), pl.col("severity")).alias("setting"),
        pl.when(pl.col("correct")).then(pl.lit("")).otherwise(pl.lit("✗")).alias("mark"))
    present = set(data["setting"].to_list())
    settings = [s for s in columns if s in present] + sorted(present - set(columns))
    order = data.unique("model", maintain_order=True)["model"].to_list()
    pick = alt.selection_point(name="cell", fields=["model_id", "corruption", "severity"], on="click")
    base = alt.Chart(data.to_pandas()).encode(
        x=alt.X("setting:N", sort=settings, title="corruption and severity",
                axis=alt.Axis(labelAngle=-50, orient="top", labelLimit=140, labelOverlap=False)),
        y=alt.Y("model:N", sort=order, title="model"),
        tooltip=["model_id", "corruption", "severity", alt.Tooltip("label_name:N", title="class"),
                 alt.Tooltip("pred_name:N", title="predicted"), "correct",
                 alt.Tooltip("angle_true:Q", format=".1f", title=f"angle_true ({DEGREES})"),
                 alt.Tooltip("feature_norm:Q", format=".3f"), alt.Tooltip("margin:Q", format=".3f"),
                 alt.Tooltip("confidence:Q", format=".3f")],
    )
    cells = base.mark_rect().encode(
        color=alt.Color("angle_true:Q", title=f"angle to true class ({DEGREES})",
                        scale=alt.Scale(scheme="inferno", reverse=True), legend=alt.Legend(orient="bottom", titleLimit=400)),
    ).add_params(pick)
    crosses = base.mark_text(color="white", fontSize=12, fontWeight="bold").encode(text="mark:N")
    return (cells + crosses).properties(title="This sample for every model: angle to its class (✗ = wrong)",
                                        height=alt.Step(22), width=alt.Step(30))


def png_data_uri(image: np.ndarray) -> str:
    """A uint8 (H, W, 3) image as a PNG data URI, for Vega image marks."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def attribution_maps(image: np.ndarray, maps: Mapping[str, np.ndarray], units: Mapping[str, str],
                     size: int = 200) -> alt.HConcatChart:
    """Occlusion attribution: per metric, how much covering each pixel changes it (occluded minus
    original; red raises, blue lowers), over the image itself."""
    height, width = image.shape[:2]
    background = pl.DataFrame({"url": [png_data_uri(image)], "x": [0.0], "y": [0.0]})
    x_scale = alt.Scale(domain=[0, width], nice=False)
    y_scale = alt.Scale(domain=[0, height], nice=False, reverse=True)
    panels = []
    for metric, heat in maps.items():
        rows, cols = np.indices(heat.shape)
        cells = pl.DataFrame({"x": cols.ravel().astype(float), "y": rows.ravel().astype(float),
                              "change": heat.ravel().astype(float)}).with_columns(
            (pl.col("x") + 1).alias("x2"), (pl.col("y") + 1).alias("y2"))
        bound = float(np.nanmax(np.abs(heat))) or 1.0
        picture = alt.Chart(background.to_pandas()).mark_image(width=size, height=size, align="left",
                                                                 baseline="top").encode(
            x=alt.X("x:Q", scale=x_scale, title="pixel column"), y=alt.Y("y:Q", scale=y_scale, title="pixel row"),
            url="url:N")
        overlay = alt.Chart(cells.to_pandas()).mark_rect(opacity=0.6, strokeWidth=0).encode(
            x=alt.X("x:Q", scale=x_scale), x2="x2:Q", y=alt.Y("y:Q", scale=y_scale), y2="y2:Q",
            color=alt.Color("change:Q", title=f"Δ {metric} ({units[metric]})",
                            scale=alt.Scale(scheme="redblue", domain=[-bound, bound], reverse=True),
                            legend=alt.Legend(orient="bottom", gradientLength=size - 40, titleLimit=size)),
            tooltip=[alt.Tooltip("x:Q", title="column"), alt.Tooltip("y:Q", title="row"),
                     alt.Tooltip("change:Q", format=".3f", title=f"Δ {metric} ({units[metric]})")])
        panels.append((picture + overlay).properties(width=size, height=size, title=f"Δ {metric}")
                      .resolve_scale(color="independent"))
    return alt.hconcat(*panels).resolve_scale(color="independent").properties(
        title="Occlusion attribution: change when a patch covers each pixel")
