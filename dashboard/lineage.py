"""The models of a store as a tree of lineage: each model drawn right of its base (the model it was derived
from), the edge labelled with how it was derived (its card's operation: "prune channel 50 %, fine-tune",
"2:4, fine-tune", "int8"; else method and target sparsity). Pure functions of the
models frame (analysis.queries.models), as dashboard.charts."""

from __future__ import annotations

import altair as alt
import polars as pl

NODE_FIELDS = ("model_id", "arch", "method", "target_sparsity", "sparsity", "seed", "base", "operation")


def tree_layout(models: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(nodes, edges): every model at `depth` (steps from its root: a model whose base is not in the store)
    and `row` (depth-first order, so a model's descendants sit right below it); one edge per model with a
    base in the store, from (x, y) to (x2, y2), labelled with the model's operation, else "method NN%"."""
    ids = models["model_id"].to_list()
    base = {row["model_id"]: row["base"] for row in models.iter_rows(named=True) if row["base"] in ids}
    children: dict[str | None, list[str]] = {}
    for model_id in ids:
        children.setdefault(base.get(model_id), []).append(model_id)
    place: dict[str, tuple[int, int]] = {}

    def visit(model_id: str, depth: int) -> None:
        place[model_id] = (depth, len(place))
        for child in children.get(model_id, []):
            if child not in place:  # a cycle of bases (refused by extract) cannot loop here
                visit(child, depth + 1)

    for root in [*children.get(None, []), *ids]:  # roots first; then anything a cycle left out
        if root not in place:
            visit(root, 0)
    nodes = models.select(*NODE_FIELDS).with_columns(
        pl.col("model_id").replace_strict({m: p[0] for m, p in place.items()}, return_dtype=pl.Int64).alias("depth"),
        pl.col("model_id").replace_strict({m: p[1] for m, p in place.items()}, return_dtype=pl.Int64).alias("row"))
    rows = nodes.filter(pl.col("model_id").is_in(list(base)))
    edges = pl.DataFrame({
        "base": [base[m] for m in rows["model_id"]], "model_id": rows["model_id"].to_list(),
        "x": [place[base[m]][0] for m in rows["model_id"]], "y": [place[base[m]][1] for m in rows["model_id"]],
        "x2": rows["depth"].to_list(), "y2": rows["row"].to_list(),
        "label": [operation or f"{method} {sparsity:.0%}" for method, sparsity, operation in
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
        x=x, y=y, color=alt.Color("method:N", title="method"),
        stroke=alt.condition(alt.datum.model_id == (selected or ""), alt.value("black"), alt.value(None)),
        tooltip=[*NODE_FIELDS[:3], alt.Tooltip("target_sparsity:Q", format=".0%"),
                 alt.Tooltip("sparsity:Q", format=".1%", title="measured sparsity"), "seed", "base"],
    ).add_params(click)
    names = alt.Chart(nodes).mark_text(align="left", dx=10, fontSize=12).encode(x=x, y=y, text="model_id:N")
    return alt.layer(lines, labels, points, names).properties(height=height, title="Lineage: base -> derived")
