"""`channel`: structured pruning that removes whole output channels, so the network really shrinks.

Torch-Pruning (Fang et al., CVPR 2023, "DepGraph") traces the model, groups every layer coupled to a
channel (the convolution, its batch norm, the next layer's input, and every layer tied to it through a
residual sum) and removes the groups with the smallest L1 weight magnitude. `sparsity` is the fraction of
output channels removed: of every group's layer with `layerwise`, else ranked across the whole network
(no layer loses more than `max_layer_sparsity`). The classifier keeps its classes (its inputs shrink with
the last convolution). Fine-tuning follows unless `finetune = false`.

The result is the registry architecture with narrower layers; `compute.checkpoint.save` records their
widths (compute.models.structure), so the smaller model loads from a spec and tensors, never pickled code.
"""

from __future__ import annotations

import torch
from torch import nn

from compute import device as devices
from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.masks import check_sparsity
from compute.train import TrainConfig, train


def remove_channels(model: nn.Module, example: torch.Tensor, sparsity: float, layerwise: bool = False,
                    max_layer_sparsity: float = 0.9) -> nn.Module:
    """`model` (in place) with `sparsity` of its output channels removed by L1 magnitude across the
    dependency graph; `example` is a batch of inputs to trace it with."""
    import torch_pruning  # imports timm when installed (seconds): paid only when channel pruning runs

    check_sparsity(sparsity)
    if not 0.0 < max_layer_sparsity < 1.0:
        raise ValueError(f"max_layer_sparsity must be in (0, 1), got {max_layer_sparsity}")
    pruner = torch_pruning.pruner.MagnitudePruner(
        model, example, importance=torch_pruning.importance.MagnitudeImportance(p=1),
        pruning_ratio=sparsity, global_pruning=not layerwise,
        max_pruning_ratio=max(max_layer_sparsity, sparsity), ignored_layers=[model.classifier])
    pruner.step()
    return model


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          layerwise: bool = False, finetune: bool = True, max_layer_sparsity: float = 0.9) -> nn.Module:
    model.eval()
    example = devices.to_input(data.images[:2], next(model.parameters()).device)
    remove_channels(model, example, check_sparsity(sparsity), layerwise, max_layer_sparsity)
    if finetune:
        train(model, data, config, device, description=f"channel {sparsity:.0%}")
    return model.eval()


METHOD = Method(prune, from_dense=True,
                summary="remove the smallest-L1 output channels of the dense model (Torch-Pruning), then fine-tune")
