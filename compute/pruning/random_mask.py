"""`random`: a uniformly random mask at initialisation, then training (the control for every other method).

If a method helps robustness only because the network got smaller, a random mask of the same sparsity
trained the same way would do as well; comparing the two separates "fewer weights" from "which weights"
(Liu et al. 2022, "The unreasonable effectiveness of random pruning", arXiv 2202.02643).

The mask's random stream is derived from the seed, never the seed itself: torch.manual_seed(seed) also
drew the initial weights, and scores from the same stream would keep exactly the most positive weights
of the first layer (a network that then barely trains).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.masks import apply_masks, check_sparsity, make_permanent, targets, topk_masks
from compute.train import TrainConfig, train


def mask_generator(seed: int) -> torch.Generator:
    """A generator for the mask, independent of the weights that torch.manual_seed(seed) initialised."""
    digest = hashlib.sha256(f"prunescope random mask {seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          layerwise: bool = False, include_classifier: bool = False) -> nn.Module:
    generator = mask_generator(config.seed)
    scores = {name: torch.rand(module.weight.shape, generator=generator)
              for name, module in targets(model, include_classifier).items()}
    apply_masks(model, topk_masks(scores, check_sparsity(sparsity), layerwise))
    train(model, data, config, device, description=f"random {sparsity:.0%}")
    return make_permanent(model)


METHOD = Method(prune, from_dense=False, summary="uniformly random mask at init, then training")
