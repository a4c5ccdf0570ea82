"""`edgepopup`: find a subnetwork of a random network by learning only which weights to keep
(Ramanujan et al. 2020, "What's hidden in a randomly weighted neural network?", arXiv 1911.13299).

A score per weight is trained (straight-through top-k by |score|); the weights stay at their signed
constant init and batch-norm has no affine parameters. Key hyperparameters: `score_lr` (0.5 with SGD;
0.1 is far too slow on digits), `init` (signed_constant or kaiming_normal), the epochs in `config`.
"""

from __future__ import annotations

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.supermask import train_supermask
from compute.train import TrainConfig


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          score_lr: float = 0.5, init: str = "signed_constant", layerwise: bool = False,
          include_classifier: bool = False) -> nn.Module:
    return train_supermask(model, data, sparsity, config, device, binarise=False, init=init, score_lr=score_lr,
                           layerwise=layerwise, include_classifier=include_classifier,
                           description=f"edgepopup {sparsity:.0%}")


METHOD = Method(prune, from_dense=False, summary="learned top-k supermask of frozen random weights")
