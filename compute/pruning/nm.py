"""`nm`: N:M semi-structured sparsity (at most N non-zero weights in every group of M consecutive weights
along the input dimension), the 2:4 pattern that NVIDIA Ampere and later tensor cores run at twice the
dense speed (Mishra et al. 2021, arXiv 2104.08378; NVIDIA's ASP recipe).

One shot from the trained dense model: in every group keep the N weights of largest magnitude, then
fine-tune with the mask fixed. A convolution's groups run along its input channels at each (output
channel, kernel position), as ASP lays them out; a layer whose input dimension is not a multiple of M
(the 3-channel stem) stays dense, as in ASP. The sparsity is 1 - N / M of the layers it applies to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from compute.datasets.base import ImageSet
from compute.pruning.base import Method
from compute.pruning.masks import apply_masks, make_permanent, targets
from compute.train import TrainConfig, train


def parse_pattern(pattern: str) -> tuple[int, int]:
    """'2:4' -> (2, 4); ValueError naming the pattern unless it is N:M with 0 < N < M."""
    n, sep, m = str(pattern).partition(":")
    if not (sep and n.isdigit() and m.isdigit() and 0 < int(n) < int(m)):
        raise ValueError(f"pattern must be N:M with 0 < N < M (e.g. 2:4), got {pattern!r}")
    return int(n), int(m)


def sparsity_of(pattern: str) -> float:
    """The fraction of weights an N:M pattern removes: 1 - N / M."""
    n, m = parse_pattern(pattern)
    return 1.0 - n / m


def grouped(weight: torch.Tensor, m: int) -> torch.Tensor:
    """The weight as rows of M consecutive input weights: (out, in) or (out, in, kh, kw) -> (-1, M), a
    convolution's input channels innermost (the input dimension must be a multiple of M)."""
    inner = weight.permute(0, 2, 3, 1) if weight.dim() == 4 else weight
    return inner.reshape(-1, m)


def ungrouped(groups: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of `grouped`: rows of M back into the weight's own layout."""
    if like.dim() == 4:
        out, cin, kh, kw = like.shape
        return groups.reshape(out, kh, kw, cin).permute(0, 3, 1, 2).contiguous()
    return groups.reshape(like.shape)


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """1 for the N largest-magnitude weights of every group of M along the input dimension, 0 elsewhere."""
    groups = grouped(weight.detach().abs(), m)
    mask = torch.zeros_like(groups).scatter_(1, groups.topk(n, dim=1).indices, 1.0)
    return ungrouped(mask, weight)


def nm_masks(model: nn.Module, pattern: str, include_classifier: bool = False) -> dict[str, torch.Tensor]:
    """Name -> N:M mask of every prunable layer whose input dimension is a multiple of M."""
    n, m = parse_pattern(pattern)
    return {name: nm_mask(module.weight, n, m) for name, module in targets(model, include_classifier).items()
            if module.weight.shape[1] % m == 0}


def prune(model: nn.Module, data: ImageSet, sparsity: float, config: TrainConfig, device: torch.device, *,
          pattern: str = "2:4", include_classifier: bool = False) -> nn.Module:
    """`sparsity` must be the pattern's (1 - N / M), which names the model; every group is pruned on its
    own, so there is no global or layer-wise ranking."""
    if abs(sparsity - sparsity_of(pattern)) > 1e-9:
        raise ValueError(f"nm pattern {pattern} removes {sparsity_of(pattern):.0%} of weights, "
                         f"not the sparsity {sparsity} given: leave the sparsity out or give {sparsity_of(pattern)}")
    apply_masks(model, nm_masks(model, pattern, include_classifier))
    train(model, data, config, device, description=f"nm {pattern}")
    return make_permanent(model)


def implied_sparsity(options: Mapping[str, Any]) -> float:
    """The sparsity of the `pattern` option (2:4 when it is not given)."""
    return sparsity_of(options.get("pattern", "2:4"))


METHOD = Method(prune, from_dense=True, implied_sparsity=implied_sparsity,
                summary="N:M semi-structured sparsity (2:4) by magnitude within each group, then fine-tuning")
