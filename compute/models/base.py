"""The model contract every architecture meets (timm-style): features, then one linear classifier.

    model.forward_features(x) -> Tensor[N, D]   the input of the final linear layer
    model.classifier                            an nn.Linear (bias optional)
    model(x) == model.classifier(model.forward_features(x))

Models take images in [0, 1] (N, 3, H, W) and normalise inside, so checkpoints are self-contained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, stored as buffers so it travels with the checkpoint."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ContractModel(nn.Module):
    """Base class: subclasses set `self.normalize`, `self.body` (images -> (N, D)) and `self.classifier`."""

    normalize: Normalize
    body: nn.Module
    classifier: nn.Linear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


class ContractError(TypeError):
    """A model does not meet the forward_features / classifier contract."""


def check_contract(model: nn.Module, name: str = "model") -> None:
    """Raise ContractError naming what is missing, so a user's model fails early and clearly."""
    if not callable(getattr(model, "forward_features", None)):
        raise ContractError(f"{name} has no forward_features(x) method returning the classifier's input")
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise ContractError(f"{name}.classifier must be an nn.Linear, got {type(classifier).__name__}")
    if classifier.out_features < 2:
        raise ContractError(f"{name}.classifier has {classifier.out_features} output; need at least 2 classes")


def prunable_weights(model: nn.Module, include_classifier: bool = False) -> list[tuple[str, nn.Module]]:
    """(name, module) of every conv and linear layer whose weight pruning may zero (classifier excluded)."""
    classifier = getattr(model, "classifier", None)
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear)) and (include_classifier or module is not classifier)]


def weight_counts(model: nn.Module) -> dict[str, int]:
    """Parameter counts: all parameters, non-zero ones, and prunable weights total and zero."""
    prunable = [module.weight for _, module in prunable_weights(model)]
    return {
        "num_params": sum(p.numel() for p in model.parameters()),
        "num_nonzero": sum(int(torch.count_nonzero(p)) for p in model.parameters()),
        "prunable": sum(w.numel() for w in prunable),
        "prunable_zero": sum(w.numel() - int(torch.count_nonzero(w)) for w in prunable),
    }


def measured_sparsity(model: nn.Module) -> float:
    """Fraction of prunable weights (conv and linear, classifier excluded) that are exactly zero."""
    counts = weight_counts(model)
    return counts["prunable_zero"] / max(counts["prunable"], 1)
