"""Masks for every method: which layers are prunable, exact top-k masks from any per-weight score, and
attaching / folding masks through torch.nn.utils.prune.

Masks keep exactly round((1 - sparsity) * n) weights: over all prunable weights at once (global, the
default) or in each layer (layer-wise). Attached masks (weight_orig, weight_mask) keep pruned weights at
zero through any training; `make_permanent` folds them into plain weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from compute.models.base import prunable_weights

Masks = dict[str, torch.Tensor]


def check_sparsity(sparsity: float) -> float:
    """The sparsity as a float, or ValueError naming it when it is outside [0, 1)."""
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return float(sparsity)


def targets(model: nn.Module, include_classifier: bool = False) -> dict[str, nn.Module]:
    """Name -> conv or linear module whose weight is pruned (the classifier only when asked)."""
    return dict(prunable_weights(model, include_classifier=include_classifier))


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: weight_orig * weight_mask while a mask is attached."""
    if prune.is_pruned(module) and hasattr(module, "weight_mask"):
        return module.weight_orig * module.weight_mask
    return module.weight


def current_mask(module: nn.Module) -> torch.Tensor:
    """The attached mask, or all ones when the layer has none."""
    mask = getattr(module, "weight_mask", None)
    return mask if mask is not None else torch.ones_like(module.weight)


def keep_count(total: int, sparsity: float) -> int:
    return int(round((1.0 - sparsity) * total))


def topk_masks(scores: dict[str, torch.Tensor], sparsity: float, layerwise: bool = False) -> Masks:
    """Binary masks keeping the highest-scoring weights: exactly round((1 - sparsity) * n) of them.

    Global (one ranking over every layer) unless `layerwise`; ties are broken by position. Pruned
    weights of an earlier round are excluded by giving them the score -inf, which nests the masks.
    """
    check_sparsity(sparsity)
    if layerwise:
        return {name: _topk(score.detach(), sparsity) for name, score in scores.items()}
    flat = torch.cat([score.detach().flatten() for score in scores.values()])
    keep = _topk(flat, sparsity)
    masks, start = {}, 0
    for name, score in scores.items():
        masks[name] = keep[start:start + score.numel()].view_as(score)
        start += score.numel()
    return masks


def _topk(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    flat = score.flatten()
    mask = torch.zeros_like(flat)
    count = keep_count(flat.numel(), sparsity)
    if count:
        mask[torch.topk(flat, count, sorted=False).indices] = 1.0
    return mask.view_as(score)


def excluding_pruned(module: nn.Module, score: torch.Tensor) -> torch.Tensor:
    """`score` with already pruned weights set to -inf, so a new mask never revives them."""
    return score.masked_fill(current_mask(module) == 0, float("-inf"))


def magnitude_masks(model: nn.Module, sparsity: float, layerwise: bool = False,
                    include_classifier: bool = False) -> Masks:
    """Masks keeping the largest-magnitude effective weights, nested in any mask already attached."""
    layers = targets(model, include_classifier)
    with torch.no_grad():
        scores = {name: excluding_pruned(m, effective_weight(m).abs()) for name, m in layers.items()}
    return topk_masks(scores, sparsity, layerwise)


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Attach (or replace) each layer's mask; training afterwards keeps the masked weights at zero."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module = modules[name]
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            module.weight_mask.copy_(mask.to(module.weight_mask))
            with torch.no_grad():  # refresh the derived attribute until the next forward recomputes it
                module.weight = module.weight_orig * module.weight_mask
        else:
            prune.custom_from_mask(module, "weight", mask.to(module.weight))


def global_magnitude(model: nn.Module, sparsity: float, layerwise: bool = False,
                     include_classifier: bool = False) -> None:
    """Attach masks zeroing the `sparsity` fraction of smallest-magnitude weights (one-shot pruning)."""
    apply_masks(model, magnitude_masks(model, sparsity, layerwise, include_classifier))


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every attached mask into its weight (weight = weight_orig * mask) and drop the hooks."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return model
