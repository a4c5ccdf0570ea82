"""The Layers page's charts: a layers x models heat map of what pruning left of each layer, and one model's
profile beside its reference's."""

from __future__ import annotations

import altair as alt
import polars as pl

from analysis.layers import MEASURES
from dashboard.charts.common import with_model_label
from store import vocabulary


def _layer_order(profile: pl.DataFrame) -> list[str]:
    """Layer labels in network order (the smallest position a layer has in any model, then by name)."""
    first = profile.group_by("layer_label").agg(pl.col("position").min()).sort("position", "layer_label")
    return first["layer_label"].to_list()


def _labelled(profile: pl.DataFrame) -> pl.DataFrame:
    """`profile` (analysis.layers.layer_profile) with `model` (method and sparsity) and `layer_label`
    ('body.0 · conv') columns."""
    return with_model_label(profile).with_columns(
        (pl.col("layer") + pl.lit(" · ") + pl.col("kind")).alias("layer_label"))


TOOLTIP = ["model_id", "method", "layer", "kind",
           alt.Tooltip("num_weights:Q", title="weights", format=","),
           alt.Tooltip("num_nonzero:Q", title="non-zero weights", format=","),
           alt.Tooltip("sparsity:Q", format=".1%"),
           alt.Tooltip("out_channels:Q", title="output channels"),
           alt.Tooltip("live_out_channels:Q", title="output channels with a non-zero weight"),
           alt.Tooltip("reference_model_id:N", title="reference"),
           alt.Tooltip("reference_out_channels:Q", title="reference's output channels"),
           alt.Tooltip("channels_kept:Q", title="channels kept", format=".1%"),
           alt.Tooltip("weight_norm:Q", title="weight norm", format=".3f")]


def layer_heatmap(profile: pl.DataFrame, measure: str, selected: str | None = None) -> alt.Chart:
    """Layers (rows, in network order) by models (columns, in the model order) coloured by `measure`
    (a key of MEASURES, 0 to 1); a click selects the model, the `selected` model's column is outlined.
    A cell without a value (channels kept of a model without a reference) is left blank."""
    data = _labelled(profile)
    models = data.sort(pl.col("method") != vocabulary.UNPRUNED, *vocabulary.MODEL_SORT, "model_id")
    model_order = models.unique("model", maintain_order=True)["model"].to_list()
    pick = alt.selection_point(name="layer_model", fields=["model_id"], on="click", empty=False,
                               value=[{"model_id": selected}] if selected else alt.Undefined)
    return alt.Chart(data.to_pandas()).mark_rect().encode(
        x=alt.X("model:N", sort=model_order, title="model (method, target sparsity)",
                axis=alt.Axis(labelAngle=-45, labelLimit=200, orient="top", labelOverlap=False)),
        y=alt.Y("layer_label:N", sort=_layer_order(data), title="layer (network order)",
                axis=alt.Axis(labelLimit=240, labelOverlap=False)),
        color=alt.Color(f"{measure}:Q", title=MEASURES[measure], scale=alt.Scale(scheme="viridis", domain=[0, 1]),
                        legend=alt.Legend(orient="top", titleLimit=600, gradientLength=240, titleOrient="left",
                                          format=".0%")),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0)),
        tooltip=TOOLTIP,
    ).add_params(pick).properties(title=f"{MEASURES[measure][0].upper()}{MEASURES[measure][1:]} by layer and model",
                                  height=alt.Step(20), width=alt.Step(max(18, min(60, 900 // max(len(model_order), 1)))))


def layer_pair(profile: pl.DataFrame, measure: str, model: str, other: str | None) -> alt.HConcatChart:
    """`model`'s profile of `measure` per layer (bars), beside `other`'s (its reference or the chosen
    comparison) on the same layer order and scale, so where the two differ reads at a glance."""
    data = _labelled(profile)
    order = _layer_order(data)

    def bars(model_id: str, role: str) -> alt.LayerChart:
        rows = alt.Chart(data.filter(pl.col("model_id") == model_id).to_pandas()).encode(
            x=alt.X(f"{measure}:Q", title=MEASURES[measure], scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(format=".0%")),
            y=alt.Y("layer_label:N", sort=order, title="layer (network order)",
                    axis=alt.Axis(labelLimit=240, labelOverlap=False)),
            tooltip=TOOLTIP)
        # the value beside its bar, so a layer at 0 (nothing pruned) reads as 0 %, not as a missing bar
        values = rows.mark_text(align="left", dx=4).encode(text=alt.Text(f"{measure}:Q", format=".0%"))
        return alt.layer(rows.mark_bar(), values).properties(
            title=alt.TitleParams(f"{role}: {model_id}", anchor="start", limit=420), width=260, height=alt.Step(22))

    charts = [bars(model, "selected")] + ([bars(other, "compared with")] if other else [])
    return alt.hconcat(*charts, spacing=24).resolve_scale(y="shared")
