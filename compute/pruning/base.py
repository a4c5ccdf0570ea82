"""What every pruning method is: a `prune` function plus the flag saying where it starts.

    prune(model, data, sparsity, config, device, *, layerwise=False, include_classifier=False, **options)
        -> the same model object class, holding its effective weights (masks folded in, binarised where the
           method binarises, scores removed), so checkpoints load with `compute.checkpoint.load` and
           extraction needs no method-specific code.

`from_dense=True`: `model` is the trained dense model and `config` the fine-tuning schedule (ft, ltr,
lrr). `from_dense=False`: `model` is freshly initialised and `config` the whole training schedule
(random, gmp, snip, edgepopup, biprop).
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.train import TrainConfig, train

PruneFunction = Callable[..., nn.Module]
RUNNER_SUPPLIED = frozenset({"rewind_state", "on_update"})  # tensors and callbacks, not settings


@dataclass(frozen=True)
class Method:
    """A registered pruning method: its function, where it starts, and one line for help texts;
    `implied_sparsity(options)` for a method whose options fix its sparsity (nm's pattern)."""

    prune: PruneFunction
    from_dense: bool
    summary: str
    implied_sparsity: Callable[[Mapping[str, Any]], float] | None = None

    @property
    def options(self) -> frozenset[str]:
        """Keyword options a user may set (study tables, `prune --option`); callers supply the others."""
        parameters = inspect.signature(self.prune).parameters.values()
        return frozenset(p.name for p in parameters if p.kind is p.KEYWORD_ONLY) - RUNNER_SUPPLIED

    @property
    def needs_rewind(self) -> bool:
        """Whether `prune` takes `rewind_state`, an early iterate of the dense run (ltr)."""
        return "rewind_state" in inspect.signature(self.prune).parameters


def epoch_steps(data: ImageSet, config: TrainConfig) -> int:
    """Optimiser steps in one epoch: the default rewind iterate of lottery-ticket rewinding."""
    return math.ceil(len(data) / config.batch_size)


def train_dense(model: nn.Module, data: ImageSet, config: TrainConfig, device: torch.device,
                rewind_step: int, description: str = "dense") -> dict[str, torch.Tensor]:
    """Train `model` in place and return its state after `rewind_step` optimiser steps (0: the init).

    Lottery-ticket rewinding (`ltr`) resets pruned networks to this early iterate, so the dense run
    records it once and every ticket of the study reuses it.
    """
    if rewind_step < 0:
        raise ValueError(f"rewind_step must be >= 0, got {rewind_step}")
    recorded: dict[str, torch.Tensor] = {}

    def record(step: int, total: int) -> None:
        if step == rewind_step:
            recorded.update(copy.deepcopy(model.state_dict()))

    if rewind_step == 0:
        recorded.update(copy.deepcopy(model.state_dict()))
    train(model, data, config, device, on_step=record, description=description)
    if not recorded:
        raise ValueError(f"rewind_step {rewind_step} is past the end of dense training")
    return {key: value.detach().cpu() for key, value in recorded.items()}
