"""Masks through torch.nn.utils.prune: global or layer-wise magnitude masks, and making them permanent."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

from compute.models import prunable_weights


def global_magnitude(model: nn.Module, sparsity: float, layerwise: bool = False) -> None:
    """Zero the `sparsity` fraction of smallest-magnitude prunable weights (classifier left dense).

    Global by default: one threshold over all layers. The masks stay attached (weight_orig, weight_mask),
    so training afterwards keeps pruned weights at zero.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    targets = [(module, "weight") for _, module in prunable_weights(model)]
    if layerwise:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=sparsity)
    else:
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every attached mask into its weight (weight = weight_orig * mask) and drop the hooks."""
    for module in model.modules():
        for name in list(getattr(module, "_forward_pre_hooks", {}).values()):
            if isinstance(name, prune.BasePruningMethod):
                prune.remove(module, name._tensor_name)
    return model
