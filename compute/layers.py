"""What pruning left of each layer: one row per prunable layer of a loaded model (store.layout.LAYER_SCHEMA).

`layer_rows` is a pure function of the model's weights: every nn.Conv2d and nn.Linear (the classifier
included) and every int8 convolution or linear layer (its packed weight dequantized), in the order the
network holds them, with its weight's element count, non-zeros, output channels, output channels that
still hold a non-zero weight, and L2 norm. Extraction records them for every model it loads
(compute.extract.run_extraction); `index_missing` computes them for a store written before them, from the
checkpoints that can still be loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from compute import loading
from store import layout, reader, writer
from store.layout import StoreError

LayerRow = dict[str, Any]


def _weight(module: nn.Module) -> tuple[str, torch.Tensor] | None:
    """(kind, weight as a float tensor) of a prunable layer, else None: a float convolution or linear layer,
    or an int8 one (torch.ao's quantized modules keep their weight packed behind a `weight()` method)."""
    if isinstance(module, nn.Conv2d):
        return "conv", module.weight.detach()
    if isinstance(module, nn.Linear):
        return "linear", module.weight.detach()
    packed = getattr(module, "weight", None)
    if callable(packed) and not isinstance(packed, nn.Module):
        weight = packed()
        if isinstance(weight, torch.Tensor) and weight.dim() in (2, 4):
            return ("conv" if weight.dim() == 4 else "linear"), (weight.dequantize() if weight.is_quantized else weight)
    return None


@torch.no_grad()
def layer_rows(model: nn.Module) -> list[LayerRow]:
    """One row per prunable layer of `model`, in module order (layout.LAYER_SCHEMA without model_id)."""
    rows = []
    for name, module in model.named_modules():
        found = _weight(module)
        if found is None:
            continue
        kind, weight = found
        per_channel = weight.reshape(weight.shape[0], -1).float()
        rows.append({
            "layer": name,
            "position": len(rows),
            "kind": kind,
            "num_weights": int(weight.numel()),
            "num_nonzero": int(torch.count_nonzero(per_channel)),
            "out_channels": int(weight.shape[0]),
            "live_out_channels": int(per_channel.ne(0).any(dim=1).sum()),
            "weight_norm": float(torch.linalg.vector_norm(per_channel.double())),
        })
    return rows


def index_missing(root: str | Path) -> tuple[list[str], dict[str, str]]:
    """Record the layers of every model of the store at `root` that has none in layers.parquet, loading each
    from its card (compute.loading.load_model, under the store's policy: files inside the store or the
    allowed roots). Returns (model ids added, model id -> why it could not be loaded)."""
    root = Path(root)
    models = reader.read_table(root / layout.MODELS).to_pylist() if (root / layout.MODELS).exists() else []
    recorded = set(reader.read_layers(root).column("model_id").to_pylist())
    image_size = int(reader.read_manifest(root)["image_size"])
    found: dict[str, list[LayerRow]] = {}
    failed: dict[str, str] = {}
    for card in models:
        if card["model_id"] in recorded:
            continue
        try:
            found[card["model_id"]] = layer_rows(loading.load_model(card, image_size, root=root))
        except (StoreError, OSError, ValueError, ImportError, RuntimeError, KeyError) as error:
            failed[card["model_id"]] = str(error).splitlines()[0] if str(error) else type(error).__name__
    writer.upsert_layers(root, found)
    return sorted(found), failed

