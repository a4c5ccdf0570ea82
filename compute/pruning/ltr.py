"""`ltr`: lottery ticket rewinding (Frankle et al. 2019, arXiv 1903.01611; 1912.05671).

Iterative magnitude pruning of the trained dense model; after each round the surviving weights (and
every other tensor: biases, batch-norm statistics) are rewound to iterate k of the dense run, then
retrained with the full schedule. `rewind_state` is that iterate, recorded by
`compute.pruning.base.train_dense`; key hyperparameters are `rounds` and k (the study's `rewind_step`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.iterative import iterative_magnitude
from compute.train import TrainConfig


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          rewind_state: Mapping[str, torch.Tensor] | None = None, rounds: int = 3, layerwise: bool = False,
          include_classifier: bool = False) -> nn.Module:
    if rewind_state is None:
        raise ValueError("ltr rewinds to an early iterate of dense training: pass rewind_state (the study and "
                         "`prune --rewind CKPT` provide it; `prune` without --dense records it)")

    def rewind(network: nn.Module) -> None:
        network.load_state_dict(rewind_state)

    return iterative_magnitude(model, data, sparsity, config, device, rounds=rounds, reset=rewind,
                               layerwise=layerwise, include_classifier=include_classifier, description="ltr")


METHOD = Method(prune, from_dense=True,
                summary="iterative magnitude pruning, weights rewound to an early dense iterate each round")
