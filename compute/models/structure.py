"""The widths of a model's layers, so a channel-pruned model is its registry architecture plus a spec.

Channel pruning (compute.pruning.channel) makes layers narrower. A checkpoint keeps the architecture's
name and, as `structure`, the widths of every layer that differs from the registry model: a convolution
[out_channels, in_channels], a linear layer [out_features, in_features], a batch norm [num_features].
Loading builds the registry model and `narrow`s those layers before the weights go in, so a smaller
network loads from tensors alone (torch.load(weights_only=True)), never from pickled code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

Structure = dict[str, list[int]]
MAX_WIDTH = 1 << 20  # widest layer a structure may declare (a registry model's widest has 2,048 channels)


def widths(module: nn.Module) -> list[int] | None:
    """[out, in] of a convolution or linear layer, [features] of a batch norm, None for anything else."""
    if isinstance(module, nn.Conv2d):
        return [module.out_channels, module.in_channels]
    if isinstance(module, nn.Linear):
        return [module.out_features, module.in_features]
    if isinstance(module, nn.BatchNorm2d):
        return [module.num_features]
    return None


def structure(model: nn.Module, reference: nn.Module) -> Structure:
    """Name -> widths of each layer of `model` narrower or wider than in `reference` (the registry model)."""
    full = dict(reference.named_modules())
    spec = {}
    for name, module in model.named_modules():
        size = widths(module)
        if size is not None and name in full and size != widths(full[name]):
            spec[name] = size
    return spec


def narrow(model: nn.Module, spec: Mapping[str, Sequence[int]]) -> nn.Module:
    """`model` (in place) with each layer named in `spec` replaced by a freshly initialised one of those
    widths; ValueError naming the layer when `spec` does not fit the model."""
    modules = dict(model.named_modules())
    for name, size in spec.items():
        old = modules.get(name)
        if not isinstance(size, (list, tuple)):
            raise ValueError(f"structure: layer {name!r} has widths {size!r}, not a list of whole numbers")
        if old is None or widths(old) is None or len(size) != len(widths(old)):
            kind = "no such layer" if old is None else f"a {type(old).__name__}"
            raise ValueError(f"structure: layer {name!r} with widths {list(size)} does not fit the model ({kind})")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH for v in size):
            raise ValueError(f"structure: layer {name!r} has widths {list(size)}; each must be a whole number "
                             f"from 1 to {MAX_WIDTH:,}")
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, _resized(old, [int(v) for v in size]))
    return model


def _resized(old: nn.Module, size: list[int]) -> nn.Module:
    if isinstance(old, nn.Conv2d):
        out_channels, in_channels = size
        depthwise = old.groups == old.in_channels == old.out_channels and old.groups > 1
        if old.groups != 1 and not depthwise:
            raise ValueError(f"structure: grouped convolution with {old.groups} groups cannot be narrowed")
        return nn.Conv2d(in_channels, out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                         groups=in_channels if depthwise else 1, bias=old.bias is not None,
                         padding_mode=old.padding_mode)
    if isinstance(old, nn.Linear):
        return nn.Linear(size[1], size[0], bias=old.bias is not None)
    return nn.BatchNorm2d(size[0], old.eps, old.momentum, old.affine, old.track_running_stats)
