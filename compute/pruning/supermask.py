"""Supermask training shared by `edgepopup` and `biprop`: the weights never train, a score per weight does.

Every prunable layer gets a score tensor through `torch.nn.utils.parametrize`; before each forward the
top-k weights by |score| form the mask (global or layer-wise, exactly k kept), and the gradient passes
straight through the selection to |score| and so, by the chain rule, to the score with its sign. Ranking
by |score| while sending the gradient to the raw score instead leaves the network at chance (paper.md).

As in the original works the weights stay at their initialisation (signed constant or Kaiming normal,
scaled by the kept fraction so activations keep their size) and batch-norm learns no affine parameters
(weight 1, bias 0; running statistics are still tracked). `binarise` (biprop) replaces each weight by
sign(w) times the layer's gain, the mean |w| of its kept weights. The classifier stays dense unless
`include_classifier`: frozen at its init (binarised too for biprop), bias zero.

The model handed back is the plain architecture with the effective weights written in.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from compute.datasets.base import ImageSet
from compute.pruning.masks import check_sparsity, targets, topk_masks
from compute.train import TrainConfig, train

INITS = ("signed_constant", "kaiming_normal")


class Supermask(nn.Module):
    """Parametrisation weight -> (binarised) frozen weight times the current top-k mask of |scores|."""

    def __init__(self, scores: torch.Tensor, binarise: bool) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.binarise = binarise
        self.mask = torch.ones_like(scores)  # replaced before every model forward: exact top-k of |scores|

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        magnitude = self.scores.abs()
        mask = self.mask + (magnitude - magnitude.detach())  # value: the mask; gradient: straight to |score|
        return effective(weight, self.mask, self.binarise) * mask


def effective(weight: torch.Tensor, mask: torch.Tensor, binarise: bool) -> torch.Tensor:
    """The weight a layer computes with before masking: itself, or sign(w) * mean |w| over the kept ones."""
    if not binarise:
        return weight
    gain = (weight.detach().abs() * mask).sum() / mask.sum().clamp(min=1.0)
    return torch.sign(weight) * gain


def initialise(weight: torch.Tensor, init: str, keep: float, generator: torch.Generator) -> torch.Tensor:
    """Frozen weights: Kaiming normal or its signed constant, std sqrt(2 / (fan_in * keep)) (Ramanujan et al.)."""
    std = math.sqrt(2.0 / (weight[0].numel() * keep))
    normal = torch.randn(weight.shape, generator=generator)
    if init == "signed_constant":
        return torch.sign(normal) * std
    if init == "kaiming_normal":
        return normal * std
    raise ValueError(f"unknown supermask init {init!r}; known: {', '.join(INITS)}")


def train_supermask(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig,
                    device: torch.device, *, binarise: bool, init: str, score_lr: float, layerwise: bool,
                    include_classifier: bool, description: str) -> nn.Module:
    """Learn a top-k supermask of `model`'s re-initialised, frozen weights; return the plain pruned model."""
    check_sparsity(sparsity)
    generator = torch.Generator().manual_seed(config.seed)
    model.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()
    layers = targets(model, include_classifier)
    classifier = model.classifier
    with torch.no_grad():
        for module in layers.values():
            module.weight.copy_(initialise(module.weight, init, 1.0 - sparsity, generator))
            if module.bias is not None:
                module.bias.zero_()
        if classifier not in layers.values():
            classifier.weight.copy_(effective(initialise(classifier.weight, init, 1.0, generator),
                                              torch.ones_like(classifier.weight), binarise))
            if classifier.bias is not None:
                classifier.bias.zero_()

    masks_of: dict[str, Supermask] = {}
    for name, module in layers.items():
        fan_in = module.weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in)  # Kaiming uniform (a = sqrt 5), as edge-popup initialises scores
        scores = torch.empty(module.weight.shape).uniform_(-bound, bound, generator=generator)
        masks_of[name] = Supermask(scores.to(module.weight), binarise)
        parametrize.register_parametrization(module, "weight", masks_of[name])

    def refresh_masks(_module: nn.Module, _inputs: tuple) -> None:
        masks = topk_masks({name: p.scores.abs() for name, p in masks_of.items()}, sparsity, layerwise)
        for name, parametrisation in masks_of.items():
            parametrisation.mask = masks[name]

    hook = model.register_forward_pre_hook(refresh_masks)
    try:
        score_config = dataclasses.replace(config, lr=score_lr)
        train(model, data, score_config, device, params=[p.scores for p in masks_of.values()],
              description=description)
        refresh_masks(model, ())
        with torch.no_grad():
            for module in layers.values():
                weight = module.weight.detach().clone()
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
                module.weight.copy_(weight)
    finally:
        hook.remove()
    model.requires_grad_(True)
    return model.eval()
