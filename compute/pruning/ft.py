"""`ft`: one-shot global magnitude pruning of the trained dense model, then fine-tuning with the mask fixed."""

from __future__ import annotations

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.masks import global_magnitude, make_permanent
from compute.train import TrainConfig, train


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig,
          device: torch.device) -> nn.Module:
    global_magnitude(model, sparsity)
    train(model, data, config, device, description=f"ft {sparsity:.0%}")
    return make_permanent(model)
