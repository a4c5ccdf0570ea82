"""`lrr`: learning-rate rewinding (Renda et al. 2020, arXiv 2003.02389).

Iterative magnitude pruning of the trained dense model; after each round the surviving weights are
kept as they are and only the learning-rate schedule restarts from its beginning. Key hyperparameter:
`rounds` (each removes the same fraction of what is left) and the retraining schedule in `config`.
"""

from __future__ import annotations

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.iterative import iterative_magnitude
from compute.train import TrainConfig


def _keep_weights(model: nn.Module) -> None:
    """LRR's reset: nothing to do to the weights; the next `train` call restarts the schedule."""


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          rounds: int = 3, layerwise: bool = False, include_classifier: bool = False) -> nn.Module:
    return iterative_magnitude(model, data, sparsity, config, device, rounds=rounds, reset=_keep_weights,
                               layerwise=layerwise, include_classifier=include_classifier, description="lrr")


METHOD = Method(prune, from_dense=True,
                summary="iterative magnitude pruning, weights kept, learning-rate schedule restarted each round")
