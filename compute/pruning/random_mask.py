"""`random`: a random mask at initialisation, then training (the control for every other method).

If a method helps robustness only because the network got smaller, a random mask of the same sparsity
trained the same way would do as well; comparing the two separates "fewer weights" from "which weights"
(Liu et al. 2022, "The unreasonable effectiveness of random pruning", arXiv 2202.02643).

As in Liu et al., the per-layer densities follow Erdos-Renyi-Kernel (Evci et al. 2020, arXiv 1911.11134):
density proportional to (sum of a layer's dimensions) / (its number of weights), so small layers such as
the first convolution stay dense. With the same sparsity in every layer (`layerwise`), a small CNN on
digits stays at chance from 80% sparsity on, because the 27-weight filters of the first layer lose
nearly all their inputs. Why from init: a random mask on the trained dense model scrambles its features,
and fine-tuning for 2-3 epochs stayed at chance for some masks and recovered for others.
"""

from __future__ import annotations

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.masks import apply_masks, check_sparsity, make_permanent, targets, topk_masks
from compute.train import TrainConfig, train


def erk_densities(shapes: dict[str, torch.Size], sparsity: float) -> dict[str, float]:
    """Per-layer densities, ERK-proportional, layers that would exceed 1 made dense, overall density 1 - s."""
    raw = {name: sum(shape) / shape.numel() for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = (1.0 - sparsity) * sum(s.numel() for s in shapes.values()) - sum(shapes[n].numel() for n in dense)
        scale = budget / sum(raw[n] * shapes[n].numel() for n in shapes if n not in dense)
        over = {n for n in shapes if n not in dense and raw[n] * scale > 1.0}
        if not over:
            return {n: 1.0 if n in dense else raw[n] * scale for n in shapes}
        dense |= over


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          layerwise: bool = False, include_classifier: bool = False) -> nn.Module:
    check_sparsity(sparsity)
    generator = torch.Generator().manual_seed(config.seed)
    layers = targets(model, include_classifier)
    scores = {name: torch.rand(module.weight.shape, generator=generator) for name, module in layers.items()}
    if layerwise:
        masks = topk_masks(scores, sparsity, layerwise=True)
    else:
        densities = erk_densities({name: module.weight.shape for name, module in layers.items()}, sparsity)
        masks = {name: topk_masks({name: score}, 1.0 - densities[name], layerwise=True)[name]
                 for name, score in scores.items()}
    apply_masks(model, masks)
    train(model, data, config, device, description=f"random {sparsity:.0%}")
    return make_permanent(model)


METHOD = Method(prune, from_dense=False, summary="random mask at init (ERK layer densities), then training")
