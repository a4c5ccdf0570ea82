"""What each model's pruning left of each layer (the catalog's `layers` view over layers.parquet): the
layer-wise sparsity and channel profiles that pruning papers plot, per model and against its reference."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from store.catalog import Catalog
from store.vocabulary import model_order

# The per-layer fractions a profile is drawn in (columns of layer_profile, 0 to 1): column -> what it is.
MEASURES: dict[str, str] = {
    "sparsity": "sparsity (fraction of weights zero)",
    "channels_kept": "output channels kept (live, vs the reference's)",
}


def layer_profile(catalog: Catalog, model_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """One row per (model, prunable layer) of `model_ids` (every model when None), models in the model order
    and layers in network order: the layer's kind, weights, non-zeros, sparsity, output channels (all and
    live), weight norm, and against the model's reference (its base, or the catalog's chosen reference)
    the reference's output channels of the same layer and the fraction kept. Empty for a store without
    layers.parquet (`catalog.has_layers`); StoreError naming the file when it is damaged."""
    if catalog.layers_error is not None:
        raise catalog.layers_error
    chosen = "true" if model_ids is None else "list_contains(?, l.model_id)"
    params = [] if model_ids is None else [[str(model_id) for model_id in model_ids]]
    return catalog.query(f"""
        SELECT l.model_id, m.method, m.target_sparsity, m.seed, l.layer, l.position, l.kind, l.num_weights,
               l.num_nonzero, l.sparsity, l.out_channels, l.live_out_channels, l.weight_norm,
               l.reference_model_id, l.reference_out_channels, l.channels_kept
        FROM layers l JOIN models m USING (model_id)
        WHERE {chosen}
        ORDER BY {model_order("l.model_id", "l.position", table="m")}
    """, params, name="layer_profile")  # noqa: S608 (constant SQL)
