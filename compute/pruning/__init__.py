"""Pruning-method registry: a method name maps to a function that turns a trained dense model into a
pruned one with the effective weights in place (masks applied and removed), so extraction needs no
method-specific code.

Add a method by adding a module with `prune(model, data, sparsity, config, device) -> nn.Module` and one
line in `METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable

from compute.pruning import ft

METHODS: dict[str, Callable] = {
    "ft": ft.prune,
}
NAMES = tuple(METHODS)


def get(method: str) -> Callable:
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; known: {', '.join(NAMES)}")
    return METHODS[method]
