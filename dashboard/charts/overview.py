"""The Overview's charts: accuracy against sparsity (per model and per replicate group), robustness
against what a model costs, and the lineage tree."""

from __future__ import annotations

import altair as alt
import polars as pl

from dashboard.charts.palette import method_colour
from store.vocabulary import UNPRUNED


def legend_height(methods: int) -> int:
    """Pixels of a chart whose legend lists `methods` methods and the two kinds of images: 340, or tall
    enough that the legend (30 px an entry as drawn, and its two titles) stays inside the chart: the demo's
    15 methods overflowed 340."""
    return max(340, 30 * (methods + 2) + 100)


def accuracy_vs_sparsity(summary: pl.DataFrame) -> alt.LayerChart:
    """Clean and mean corruption accuracy against measured sparsity, one line per method, each starting
    at the dense model.

    `summary` has model_id, method, sparsity, clean_accuracy and, optionally, corruption_accuracy (as
    analysis.matrices.model_summary returns them). A click selects the model.
    """
    measures = [c for c in ("clean_accuracy", "corruption_accuracy") if c in summary.columns]
    data = (summary.select("model_id", "method", pl.col("sparsity").cast(pl.Float64), *measures)
            .unpivot(measures, index=["model_id", "method", "sparsity"], variable_name="images",
                     value_name="accuracy")
            .with_columns(pl.col("images").str.replace("_accuracy", "").replace({"corruption": "corrupted"})))
    dense = data.filter(pl.col("method") == UNPRUNED)
    methods = data.filter(pl.col("method") != UNPRUNED)["method"].unique(maintain_order=True)
    lines = pl.concat([data, *(dense.with_columns(pl.lit(m).alias("method")) for m in methods)])
    encoding = {
        "x": alt.X("sparsity:Q", title="measured sparsity (fraction of the weights removed)",
                   scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
        "y": alt.Y("accuracy:Q", title="accuracy (fraction correct)", scale=alt.Scale(zero=False)),
        "color": method_colour(lines["method"].to_list()),
        "strokeDash": alt.StrokeDash("images:N", title="images", sort=["clean", "corrupted"]),
        "shape": alt.Shape("images:N", title="images", sort=["clean", "corrupted"]),
        "tooltip": ["model_id", "method", "images", alt.Tooltip("sparsity:Q", format=".3f"),
                    alt.Tooltip("accuracy:Q", format=".4f")],
    }
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    line = alt.Chart(lines.to_pandas()).mark_line(opacity=0.7).encode(**encoding)
    points = alt.Chart(data.to_pandas()).mark_point(size=80, filled=True).encode(**encoding).add_params(pick)
    return (line + points).properties(
        title="Accuracy vs sparsity (clean, and mean over every corruption and severity)",
        height=legend_height(lines["method"].n_unique()))


def group_accuracy_vs_sparsity(points: pl.DataFrame) -> alt.LayerChart:
    """accuracy_vs_sparsity per replicate group: the mean over seeds of clean and mean corruption accuracy
    against measured sparsity (the mean over seeds: a channel-pruned group sits where its removed weights
    put it, not at its channel target), with the 95 % interval as an error bar, one line per method from
    the dense group. `points` has model_id (the group's first model: a click selects it), group_id,
    method, target_sparsity, sparsity, seeds, images (clean / corrupted), accuracy, low, high."""
    dense = points.filter(pl.col("method") == UNPRUNED)
    methods = points.filter(pl.col("method") != UNPRUNED)["method"].unique(maintain_order=True)
    lines = pl.concat([points, *(dense.with_columns(pl.lit(m).alias("method")) for m in methods)])
    x = alt.X("sparsity:Q", title="measured sparsity (fraction of the weights removed, mean over seeds)",
              scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%"))
    color = method_colour(lines["method"].to_list())
    dash = alt.StrokeDash("images:N", title="images", sort=["clean", "corrupted"])
    tooltip = ["group_id", "seeds", "method", "images", alt.Tooltip("target_sparsity:Q", format=".0%"),
               alt.Tooltip("sparsity:Q", title="measured sparsity", format=".1%"),
               alt.Tooltip("accuracy:Q", title="mean accuracy", format=".4f"),
               alt.Tooltip("low:Q", title="95% low", format=".4f"), alt.Tooltip("high:Q", title="95% high", format=".4f")]
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    y = alt.Y("accuracy:Q", title="accuracy (mean over seeds)", scale=alt.Scale(zero=False))
    line = alt.Chart(lines.to_pandas()).mark_line(opacity=0.7).encode(x=x, y=y, color=color, strokeDash=dash)
    bars = alt.Chart(points.to_pandas()).mark_errorbar(ticks=True).encode(
        x=x, y=alt.Y("low:Q", title="accuracy (mean over seeds)"), y2="high:Q", color=color, tooltip=tooltip)
    dots = alt.Chart(points.to_pandas()).mark_point(size=80, filled=True).encode(
        x=x, y=y, color=color, shape=alt.Shape("images:N", title="images", sort=["clean", "corrupted"]),
        tooltip=tooltip).add_params(pick)
    return (line + bars + dots).properties(
        title="Accuracy vs sparsity per group (mean over seeds, 95% interval; clean and mean corruption)",
        height=legend_height(lines["method"].n_unique()))


# -- robustness against cost (the model card's footprint, compute.footprint) -----------------------------

COSTS = {  # model card column -> axis title
    "file_bytes": "file size (bytes)",
    "latency_ms_batch1": "CPU ms per image, batch 1",
    "latency_ms_batch256": "CPU ms per image, batch 256",
}


COST_PANEL = 210  # pixels: three panels fit the page at 1280 px with the sidebar open


def has_costs(models: pl.DataFrame) -> bool:
    """Whether any model of the frame has a measured footprint (stores extracted before it have none)."""
    return all(column in models.columns for column in COSTS) and models["file_bytes"].is_not_null().any()


def robustness_vs_cost(frame: pl.DataFrame) -> alt.FacetChart:
    """Mean corruption accuracy (and clean accuracy, hollow) against each cost on a log axis, one panel
    per cost, one colour per method; a click selects the model (field model_id, dashboard.linking).

    `frame` has model_id, method, clean_accuracy, corruption_accuracy and the COSTS columns; models
    without a measured cost are left out of that panel."""
    long = (frame.select("model_id", "method", "clean_accuracy", "corruption_accuracy",
                         *(pl.col(c).cast(pl.Float64) for c in COSTS))
            .unpivot(list(COSTS), index=["model_id", "method", "clean_accuracy", "corruption_accuracy"],
                     variable_name="cost", value_name="value")
            .drop_nulls("value").filter(pl.col("value") > 0)
            .with_columns(pl.col("cost").replace_strict(COSTS)))
    pick = alt.selection_point(name="model", fields=["model_id"], on="click")
    base = alt.Chart().encode(
        x=alt.X("value:Q", title=None, scale=alt.Scale(type="log")),
        color=method_colour(long["method"].to_list()),
        tooltip=["model_id", "method", "cost", alt.Tooltip("value:Q", format=",.3~f", title="cost"),
                 alt.Tooltip("corruption_accuracy:Q", format=".4f"), alt.Tooltip("clean_accuracy:Q", format=".4f")])
    corrupted = base.mark_point(size=90, filled=True).encode(
        y=alt.Y("corruption_accuracy:Q", title="accuracy (filled: corrupted mean, hollow: clean)",
                scale=alt.Scale(zero=False))).add_params(pick)
    clean = base.mark_point(size=60, filled=False).encode(y=alt.Y("clean_accuracy:Q"))
    # Panels of a fixed width and the legend below them: three panels and a legend beside them overflowed
    # the page at 1400 px.
    return (alt.layer(corrupted, clean, data=long.to_pandas()).properties(width=COST_PANEL, height=COST_PANEL)
            .facet(column=alt.Column("cost:N", title=None, sort=list(COSTS.values())))
            .resolve_scale(x="independent")
            .properties(title="Robustness vs size and CPU latency (log scales)")
            .configure_legend(orient="bottom", direction="horizontal", columns=6))


# What a chart needs of a model to place it: card or summary column -> why a model without it is not shown.
PLACED_BY_SPARSITY = {"sparsity": "no measured sparsity", "clean_accuracy": "no clean predictions"}
PLACED_BY_COST = {"file_bytes": "no file size measured", "latency_ms_batch1": "no CPU latency measured",
                  "corruption_accuracy": "no corrupted predictions"}


def unplaced(frame: pl.DataFrame, needs: dict[str, str]) -> str | None:
    """One line naming each model (model_id) of `frame` that a chart cannot place and why (the first column
    of `needs` it lacks: null, or absent from the frame); None when every model is placed."""
    reasons = [pl.when(pl.col(column).is_null()).then(pl.lit(why)) if column in frame.columns else pl.lit(why)
               for column, why in needs.items()]
    missing = frame.select("model_id", pl.coalesce(*reasons).alias("why")).drop_nulls("why")
    if missing.is_empty():
        return None
    return "Not shown: " + "; ".join(f"{model_id} ({why})" for model_id, why in missing.iter_rows()) + "."


# -- lineage: each model right of its base, the edge labelled with how it was derived --------------------

NODE_FIELDS = ("model_id", "arch", "method", "target_sparsity", "sparsity", "seed", "base", "operation")


def tree_layout(models: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(nodes, edges): every model at `depth` (steps from its root: a model whose base is not in the store)
    and `row` (depth-first order, so a model's descendants sit right below it); one edge per model with a
    base in the store, from (x, y) to (x2, y2), labelled with the model's operation, else "method NN%"."""
    ids = models["model_id"].to_list()
    known = set(ids)
    base = {row["model_id"]: row["base"] for row in models.iter_rows(named=True) if row["base"] in known}
    children: dict[str | None, list[str]] = {}
    for model_id in ids:
        children.setdefault(base.get(model_id), []).append(model_id)
    place: dict[str, tuple[int, int]] = {}
    for root in [*children.get(None, []), *ids]:  # roots first; then anything a cycle of bases left out
        if root in place:
            continue
        stack = [(root, 0)]  # depth first without recursion: a chain of thousands of bases is a loop
        while stack:
            model_id, depth = stack.pop()
            if model_id in place:  # a cycle of bases (refused by extract, named by verify) cannot loop here
                continue
            place[model_id] = (depth, len(place))
            stack.extend((child, depth + 1) for child in reversed(children.get(model_id, [])))
    nodes = models.select(*NODE_FIELDS).with_columns(
        pl.col("model_id").replace_strict({m: p[0] for m, p in place.items()}, return_dtype=pl.Int64).alias("depth"),
        pl.col("model_id").replace_strict({m: p[1] for m, p in place.items()}, return_dtype=pl.Int64).alias("row"))
    rows = nodes.filter(pl.col("model_id").is_in(list(base)))
    edges = pl.DataFrame({
        "base": [base[m] for m in rows["model_id"]], "model_id": rows["model_id"].to_list(),
        "x": [place[base[m]][0] for m in rows["model_id"]], "y": [place[base[m]][1] for m in rows["model_id"]],
        "x2": rows["depth"].to_list(), "y2": rows["row"].to_list(),
        "label": [operation or f"{method} {'?' if sparsity is None else format(sparsity, '.0%')}"
                  for method, sparsity, operation in
                  zip(rows["method"].to_list(), rows["target_sparsity"].to_list(), rows["operation"].to_list(),
                      strict=True)],
    }, schema={"base": pl.String, "model_id": pl.String, "x": pl.Int64, "y": pl.Int64, "x2": pl.Int64,
               "y2": pl.Int64, "label": pl.String})
    return nodes, edges


def lineage_tree(models: pl.DataFrame, selected: str | None = None) -> alt.LayerChart:
    """The lineage tree; a click on a node selects its model (field model_id, dashboard.linking)."""
    nodes, edges = tree_layout(models)
    height = 40 * max(nodes.height, 2)
    x = alt.X("depth:Q", axis=None, scale=alt.Scale(domain=[-0.3, float(nodes["depth"].max() or 0) + 0.8]))
    y = alt.Y("row:Q", axis=None, scale=alt.Scale(domain=[-0.5, nodes.height - 0.5], reverse=True))
    click = alt.selection_point(fields=["model_id"], name="lineage")
    lines = alt.Chart(edges).mark_rule(color="#888").encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None), x2="x2:Q", y2="y2:Q")
    labels = alt.Chart(edges).transform_calculate(mx="(datum.x + datum.x2) / 2", my="(datum.y + datum.y2) / 2").mark_text(
        dy=-7, fontSize=11, color="#555").encode(x=alt.X("mx:Q", axis=None), y=alt.Y("my:Q", axis=None), text="label:N")
    points = alt.Chart(nodes).mark_circle(size=160).encode(
        x=x, y=y, color=method_colour(nodes["method"].to_list()),
        stroke=alt.condition(alt.datum.model_id == (selected or ""), alt.value("black"), alt.value(None)),
        tooltip=[*NODE_FIELDS[:3], alt.Tooltip("target_sparsity:Q", format=".0%"),
                 alt.Tooltip("sparsity:Q", format=".1%", title="measured sparsity"), "seed", "base"],
    ).add_params(click)
    names = alt.Chart(nodes).mark_text(align="left", dx=10, fontSize=12).encode(x=x, y=y, text="model_id:N")
    return alt.layer(lines, labels, points, names).properties(height=height, title="Lineage: base -> derived")
