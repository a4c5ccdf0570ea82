"""Loading a model from its card, and the policy of what a server may load.

`load_model` is the one way a model is loaded from its card (compute.cards): a prunescope checkpoint, a
package.module:function with its weights, or a RobustBench model, as the card's `loader` says. The
command line loads the files its user names. A server (the dashboard's attribution) passes the store it
serves as `root`, and then only what the operator allows is touched: every file is resolved by
store.confine.resolve_allowed, inside the store or under an allowed root (--allow-root), and a module is
code the server would run, so its files must lie there too. `missing_checkpoint` says why a model cannot
be loaded, before anything outside the allowed places is touched, so the answer reveals nothing about it.

torch comes with the loaders (compute.checkpoint, compute.byo), imported inside `load_model`: a page
that only asks whether a model can be loaded does not load torch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.confine import regular, resolve_allowed
from store.layout import StoreError
from store.reader import parse_json

if TYPE_CHECKING:
    from torch import nn

CHECKPOINT = "checkpoint"  # the loader kind of a prunescope checkpoint (compute.cards.CHECKPOINT_LOADER)
MODULE = "module"  # package.module:function with its weights (compute.cards.ModelSpec.loader)
ROBUSTBENCH = "robustbench"  # a RobustBench model by name


def loader_record(loader: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A card's `loader`: models.parquet's JSON text parsed within the store reader's bounds (a mapping is
    taken as it is); None for a store written before it. StoreError when it is not a JSON object."""
    if loader is None:
        return None
    if isinstance(loader, Mapping):
        return dict(loader)
    try:
        record = parse_json(loader)
    except ValueError as error:
        raise StoreError(f"this model's loader record in models.parquet is not valid JSON: {error}") from error
    if not isinstance(record, dict):
        raise StoreError("this model's loader record in models.parquet is not a JSON object")
    return record


def missing_checkpoint(root: str | Path, recorded: str | None, loader: str | None = None) -> str | None:
    """Why a server cannot load this model, else None: a prunescope checkpoint that is not recorded,
    outside the store and the allowed roots, or gone; a module:function whose module's file or weights lie
    outside them (the operator decides which code and files the server may load: --allow-root); a
    RobustBench model without the package or outside them. Nothing outside the allowed places is touched,
    so the answer reveals nothing about it."""
    try:
        record = loader_record(loader)
    except StoreError as error:
        return f"Attribution refused: {error}."
    kind = CHECKPOINT if record is None else record.get("kind")
    if kind == MODULE:
        return _module_problem(root, record) or (_file_problem(root, recorded, "weights") if recorded else None)
    if kind == ROBUSTBENCH:
        return _robustbench_problem(root, record)
    if not recorded:
        return "This model has no checkpoint recorded in models.parquet, so its attribution cannot be computed."
    return _file_problem(root, recorded, "checkpoint")


def _file_problem(root: str | Path, recorded: str, what: str) -> str | None:
    try:
        path = resolve_allowed(root, recorded, what)
    except StoreError as error:
        return f"Attribution refused: {error}."
    if not path.is_file():
        return f"This model's {what} is not in this store, so the attribution cannot be computed."
    return None


def _module_problem(root: str | Path, record: dict[str, Any]) -> str | None:
    """The module of a module:function loader must be importable and its files allowed (they are code the
    server would run). The top-level package is found first (finding it runs none of its code) and must
    lie under the allowed places before a dotted module's parent package is imported to find the rest."""
    module = str(record.get("function", "")).partition(":")[0]
    for name in dict.fromkeys([module.partition(".")[0], module]):
        try:
            spec = importlib.util.find_spec(name) if name else None
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            return (f"The model's module `{module}` cannot be imported by this server, so its attribution cannot "
                    "be computed (the operator starts the dashboard where it is importable: PYTHONPATH).")
        if not Path(spec.origin).is_absolute():  # built into Python (frozen, built-in): never a model's file
            return f"Attribution refused: the model's module `{module}` is not a file under the allowed roots."
        problem = _file_problem(root, spec.origin, "model module")
        if problem:
            return problem
    return None


def _robustbench_problem(root: str | Path, record: dict[str, Any]) -> str | None:
    if importlib.util.find_spec("robustbench") is None:
        return "RobustBench models need the optional robustbench package, which this server does not have."
    model_dir = record.get("model_dir")
    if not model_dir:
        return "This RobustBench model's download directory is not recorded, so it cannot be loaded here."
    try:
        resolve_allowed(root, model_dir, "RobustBench model directory")
    except StoreError as error:
        return f"Attribution refused: {error}."
    return None


def load_model(card: Mapping[str, Any], image_size: int, *, root: str | Path | None = None) -> nn.Module:
    """The model a card describes, behind the model contract: `card["loader"]` says how it is loaded (a
    models.parquet row's JSON text, a ModelSpec.loader mapping, or None for a store written before loaders:
    a prunescope checkpoint) and `card["checkpoint"]` is its checkpoint or weights.

    With `root`, only what the policy allows (`missing_checkpoint`), files resolved against the store
    `root`: StoreError saying why not, and for a damaged or mismatched checkpoint (the message names the
    file relative to the store, never its path on the server). Without it, the files are loaded as named, and a
    damaged one is a ValueError.
    """
    from compute import byo, checkpoint  # torch: only when a model is loaded

    recorded, loader = card.get("checkpoint"), card.get("loader")
    record, path = loader_record(loader), recorded
    if root is not None:
        problem = missing_checkpoint(root, recorded, loader)
        if problem:
            raise StoreError(problem)
        path = regular(resolve_allowed(root, recorded)) if recorded else None
    try:
        kind = CHECKPOINT if record is None else record.get("kind")
        if kind == CHECKPOINT:
            return checkpoint.load(path)[0]
        if kind == ROBUSTBENCH:
            return byo.load_robustbench(record["name"], record["dataset"], record["threat_model"],
                                        record.get("model_dir") or byo.ROBUSTBENCH_DIR)
        if kind == MODULE:
            return byo.load_user_model(record["function"], None if path is None else str(path),
                                       normalize=record.get("normalize"), image_size=image_size)
        raise ValueError(f"no loader of kind {kind!r}; known: {CHECKPOINT}, {MODULE}, {ROBUSTBENCH}")
    except ValueError as error:  # compute.checkpoint.CheckpointError: a damaged or mismatched file
        if root is None:
            raise
        raise StoreError(str(error).replace(str(path), _store_name(root, path)) if path else str(error)) from error


def _store_name(root: str | Path, path: str | Path) -> str:
    """How a refusal names a file a server loads: relative to the store when it lies inside, else as "this
    model's checkpoint" (a file under an allowed root is not the visitor's to locate)."""
    try:
        return Path(path).relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return "this model's checkpoint"
