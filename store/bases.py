"""The base of a model row written before model cards, filled once by `python -m compute migrate`.

Every writer since model cards records a model's `loader` and its `base` (compute.extract sets it at
extraction). A row without a loader was written before them, without a base, under the rule of its day: a
pruned model's base is the dense (unpruned) model of its architecture, the one of its seed first,
then the first by model id. `compute migrate` writes that base into models.parquet once; the catalog
then only reads `base`, and refuses a store whose rows still wait for it (`check`), naming the command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from store import layout, reader, writer
from store.layout import StoreError
from store.vocabulary import UNPRUNED

MAX_DEPTH = 64  # generations of bases a lineage may hold (dense -> pruned -> quantized ... is a handful)


def lineage(bases: Mapping[str, str | None]) -> tuple[dict[str, int], list[str] | None]:
    """(each model's depth: the steps from it to a model whose base is not among `bases` (model id ->
    base or None), a cycle of bases as [a, b, ..., a] or None). Each model is walked once, so a chain or
    a cycle of thousands costs thousands of steps, never their square; models on or below a cycle get no
    depth."""
    depth: dict[str, int] = {}
    done: set[str] = set()
    cycle: list[str] | None = None
    for start in bases:
        path: list[str] = []
        on_path: dict[str, int] = {}
        current: str | None = start
        while current in bases and current not in done:
            if current in on_path:
                cycle = cycle or [*path[on_path[current]:], current]
                break
            on_path[current] = len(path)
            path.append(current)
            current = bases[current]
        below = depth.get(current, -1) if current in done else -1
        reached = current not in bases or current in depth  # a root, or a model with a depth
        for model_id in reversed(path):
            below += 1
            if reached:
                depth[model_id] = below
            done.add(model_id)
    return depth, cycle


def lineage_problems(bases: Mapping[str, str | None]) -> list[str]:
    """What is wrong with the lineage of models (model id -> base or None): a cycle of bases, a chain of
    more than MAX_DEPTH bases. Empty when it is a forest of shallow trees."""
    depth, cycle = lineage(bases)
    problems = [f"the bases form a cycle ({' -> '.join(cycle[:6])}{' -> ...' if len(cycle) > 6 else ''})"] if cycle else []
    deep = [model_id for model_id, steps in depth.items() if steps > MAX_DEPTH]
    if deep:
        problems.append(f"model {deep[0]!r:.80} is {depth[deep[0]]} bases from its root, more than {MAX_DEPTH} "
                        f"({len(deep)} model(s) so deep)")
    return problems


def unpruned_base(model: Mapping[str, Any], models: Sequence[Mapping[str, Any]]) -> str | None:
    """The one rule for a pruned model whose base is not named otherwise: the dense (unpruned) model of its
    arch among `models`, its own seed first, then another seed, then none, then by model id; None when its
    arch has no dense model. Extraction uses it for prunescope checkpoints whose run record names no base
    it can find (compute.cards.fill_bases), `compute migrate` for rows written before model cards."""
    candidates = sorted((_seed_rank(model.get("seed"), other.get("seed")), other["model_id"]) for other in models
                        if other["method"] == UNPRUNED and other["arch"] == model["arch"])
    return candidates[0][1] if candidates else None


def legacy_base(model: Mapping[str, Any], models: Sequence[Mapping[str, Any]]) -> str | None:
    """The base `model` was written under when it is a row from before model cards (no loader, no base,
    pruned): `unpruned_base`. None for any other row."""
    if model.get("loader") is not None or model.get("base") is not None or model["method"] == UNPRUNED:
        return None
    return unpruned_base(model, models)


def _seed_rank(seed: int | None, other: int | None) -> int:
    """The same seed first, then another seed, then none (all alike for a model without a seed)."""
    if seed is None:
        return 0
    return 0 if other == seed else 1 if other is not None else 2


def unfilled(models: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """model_id -> the base `legacy_base` gives it, for every row still waiting for `compute migrate`."""
    found = {model["model_id"]: legacy_base(model, models) for model in models}
    return {model_id: base for model_id, base in found.items() if base is not None}


def hint(root: str | Path, count: int) -> str:
    """The one line that says a store's rows from before model cards need their base filled."""
    return (f"{Path(root)}: {count} model(s) in {layout.MODELS} were written before model cards and record no "
            f"base; fill it once with `python -m compute migrate --store {Path(root)}`")


def check(root: str | Path, models: Sequence[Mapping[str, Any]]) -> None:
    """StoreError (`hint`) when any row of `models` still waits for its base."""
    if pending := unfilled(models):
        raise StoreError(hint(root, len(pending)))


def fill(root: str | Path) -> int:
    """Write the base of every row from before model cards into models.parquet (atomically, under the
    store's lock; the card columns an old file lacks come out null); returns how many rows got one."""
    root = Path(root)
    path = root / layout.MODELS
    with writer.locked(root):
        if not path.is_file():
            return 0
        rows = reader.read_table(path).to_pylist()  # its declared rows checked against its size first
        filled = unfilled(rows)
        if filled:
            rows = [{**dict.fromkeys(layout.MODEL_SCHEMA.names), **row,
                     "base": filled.get(row["model_id"], row.get("base"))} for row in rows]
            writer.write_parquet(root, pa.Table.from_pylist(rows, schema=layout.MODEL_SCHEMA), path)
    return len(filled)
