"""`gmp`: gradual magnitude pruning during training from scratch (Zhu & Gupta 2017, arXiv 1710.01878).

Sparsity rises from 0 to the target along the cubic schedule
    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_n - t_0))^3
with `updates` mask updates spread over [begin, end] (fractions of all training steps): fast pruning while
the network is redundant, slower near the end, then training at the final sparsity heals the last cut.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.models.base import measured_sparsity
from compute.pruning.base import Method
from compute.pruning.masks import check_sparsity, global_magnitude, make_permanent
from compute.train import TrainConfig, train


def cubic_sparsity(step: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta's target sparsity at optimiser step `step` (clamped before `begin` and after `end`)."""
    if step <= begin:
        return initial
    if step >= end:
        return final
    return final + (initial - final) * (1.0 - (step - begin) / (end - begin)) ** 3


def update_steps(total_steps: int, begin: float, end: float, updates: int) -> list[int]:
    """The steps t_0 + i * dt (i = 1..updates) at which the mask is recomputed; the last one is t_n."""
    first, last = round(begin * total_steps), max(round(end * total_steps), 1)
    return sorted({first + round(i * (last - first) / updates) for i in range(1, updates + 1)})


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          layerwise: bool = False, include_classifier: bool = False, begin: float = 0.1, end: float = 0.7,
          updates: int = 10, on_update: Callable[[int, float], None] | None = None) -> nn.Module:
    """Train from init while pruning; `on_update(step, measured sparsity)` reports each mask update."""
    check_sparsity(sparsity)
    if not 0.0 <= begin < end <= 1.0 or updates < 1:
        raise ValueError(f"gmp needs 0 <= begin < end <= 1 and updates >= 1, got {begin}, {end}, {updates}")
    schedule: list[int] = []

    def step(step: int, total: int) -> None:
        if not schedule:
            schedule.extend(update_steps(total, begin, end, updates))
        if step in schedule:
            first, last = round(begin * total), schedule[-1]
            global_magnitude(model, cubic_sparsity(step, sparsity, first, last), layerwise, include_classifier)
            if on_update is not None:
                on_update(step, measured_sparsity(model))

    train(model, data, config, device, on_step=step, description=f"gmp {sparsity:.0%}")
    return make_permanent(model)


METHOD = Method(prune, from_dense=False, summary="gradual magnitude pruning while training (cubic schedule)")
