"""Pruning-method registry: a method name maps to a `Method` (its `prune` function and where it starts).

Every `prune` returns the plain architecture holding its effective weights (masks folded in, binarised
where the method binarises, scores gone), so checkpoints load with `compute.checkpoint.load` and
extraction needs no method-specific code. See `compute.pruning.base` for the interface and
docs/pruning.md for the methods. Add a method by adding one module and one line in `METHODS`.
"""

from __future__ import annotations

from compute.pruning import biprop, channel, edgepopup, ft, gmp, lrr, ltr, nm, random_mask, snip
from compute.pruning.base import Method

METHODS: dict[str, Method] = {
    "random": random_mask.METHOD,
    "ft": ft.METHOD,
    "gmp": gmp.METHOD,
    "ltr": ltr.METHOD,
    "lrr": lrr.METHOD,
    "snip": snip.METHOD,
    "edgepopup": edgepopup.METHOD,
    "biprop": biprop.METHOD,
    "channel": channel.METHOD,
    "nm": nm.METHOD,
}
NAMES = tuple(METHODS)


def get(method: str) -> Method:
    """The registered method `method`, or ValueError listing the known ones."""
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; known: {', '.join(NAMES)}")
    return METHODS[method]


__all__ = ["METHODS", "NAMES", "get"]
