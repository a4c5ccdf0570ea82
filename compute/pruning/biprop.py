"""`biprop`: multi-prize lottery tickets, pruned and binarised, never weight-trained
(Diffenderfer & Kailkhura 2021, arXiv 2103.09377).

EdgePopup's learned top-k supermask over frozen Kaiming-normal weights, where each kept weight
computes as sign(w) times its layer's gain, the mean |w| of the kept weights. Key hyperparameters:
`score_lr` (0.5 with SGD), `init`, the epochs in `config`.
"""

from __future__ import annotations

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.supermask import train_supermask
from compute.train import TrainConfig


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          score_lr: float = 0.5, init: str = "kaiming_normal", layerwise: bool = False,
          include_classifier: bool = False) -> nn.Module:
    return train_supermask(model, data, sparsity, config, device, binarise=True, init=init, score_lr=score_lr,
                           layerwise=layerwise, include_classifier=include_classifier,
                           description=f"biprop {sparsity:.0%}")


METHOD = Method(prune, from_dense=False, summary="binarised weights (sign x layer gain) under a learned supermask")
