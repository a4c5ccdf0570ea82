"""Iterative magnitude pruning shared by `ltr` and `lrr`: `rounds` rounds of (prune, reset, retrain).

Round r prunes the trained network to sparsity 1 - (1 - s)^(r / rounds), so every round removes the
same fraction of the surviving weights and the last round lands on the target exactly. The masks nest:
a weight pruned once stays pruned. What "reset" means is the method: `ltr` rewinds the weights to an
early iterate of dense training, `lrr` keeps the weights and only restarts the learning-rate schedule
(every `train` call starts the schedule anew).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.masks import apply_masks, check_sparsity, magnitude_masks, make_permanent
from compute.train import TrainConfig, train


def round_sparsity(sparsity: float, round_index: int, rounds: int) -> float:
    """Sparsity after round `round_index` (1-based) of `rounds`."""
    return 1.0 - (1.0 - sparsity) ** (round_index / rounds)


def iterative_magnitude(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig,
                        device: torch.device, *, rounds: int, reset: Callable[[nn.Module], None],
                        layerwise: bool, include_classifier: bool, description: str) -> nn.Module:
    """Prune a trained model over `rounds` rounds; `reset(model)` runs on the folded weights of each round."""
    check_sparsity(sparsity)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    for round_index in range(1, rounds + 1):
        target = round_sparsity(sparsity, round_index, rounds)
        masks = magnitude_masks(model, target, layerwise, include_classifier)
        make_permanent(model)
        reset(model)
        apply_masks(model, masks)
        train(model, data, config, device, description=f"{description} {round_index}/{rounds} ({target:.0%})")
    return make_permanent(model)
