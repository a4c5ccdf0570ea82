"""`ft`: one-shot magnitude pruning of the trained dense model, then fine-tuning with the mask fixed.

The classic baseline (Han et al. 2015, one-shot variant): remove the smallest weights once, then train
the survivors for `config.epochs` at the fine-tuning learning rate.
"""

from __future__ import annotations

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.masks import check_sparsity, global_magnitude, make_permanent
from compute.train import TrainConfig, train


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          layerwise: bool = False, include_classifier: bool = False) -> nn.Module:
    global_magnitude(model, check_sparsity(sparsity), layerwise, include_classifier)
    train(model, data, config, device, description=f"ft {sparsity:.0%}")
    return make_permanent(model)


METHOD = Method(prune, from_dense=True, summary="one-shot magnitude pruning of the dense model, then fine-tuning")
