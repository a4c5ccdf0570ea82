"""`snip`: single-shot network pruning at initialisation (Lee et al. 2019, arXiv 1810.02340).

Each weight's connection sensitivity |g * w| (gradient of the loss on one batch times the weight) is
computed at init; the most sensitive weights are kept and the sparse network is trained from there.
Key hyperparameter: `probe_size`, the number of training images in that one batch.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from compute import device as devices
from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.masks import apply_masks, check_sparsity, make_permanent, targets, topk_masks
from compute.train import TrainConfig, train


def probe_batch(data: ImageSet, size: int, seed: int) -> ImageSet:
    """The one batch SNIP scores on: `size` training images drawn with `seed`."""
    index = np.sort(torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:size].numpy())
    return ImageSet(data.images[index], data.labels[index])


def connection_sensitivity(model: nn.Module, batch: ImageSet, device: torch.device,
                           include_classifier: bool = False) -> dict[str, torch.Tensor]:
    """|dL/dw * w| per prunable weight, from one forward/backward pass on a copy (the model is untouched)."""
    probe = devices.prepare_model(copy.deepcopy(model), device).train()
    layers = targets(probe, include_classifier)
    x = devices.to_input(batch.images, device)
    loss = F.cross_entropy(probe(x), torch.from_numpy(batch.labels).to(device))
    grads = torch.autograd.grad(loss, [module.weight for module in layers.values()])
    return {name: (grad * module.weight).abs().detach() for (name, module), grad in zip(layers.items(), grads,
                                                                                      strict=True)}


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          probe_size: int = 128, layerwise: bool = False, include_classifier: bool = False) -> nn.Module:
    check_sparsity(sparsity)
    scores = connection_sensitivity(model, probe_batch(data, probe_size, config.seed), device, include_classifier)
    apply_masks(model, topk_masks(scores, sparsity, layerwise))
    train(model, data, config, device, description=f"snip {sparsity:.0%}")
    return make_permanent(model)


METHOD = Method(prune, from_dense=False, summary="keep the weights with the largest |gradient x weight| at init")
