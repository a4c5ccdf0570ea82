"""Loading a model from its card, and the policy of what a server may load.

`load_model` is the one way a model is loaded from its card (compute.cards): a prunescope checkpoint, a
package.module:function with its weights, or a RobustBench model, as the card's `loader` says. The
command line loads the files its user names. A server (the dashboard's attribution) passes the store it
serves as `root`, and then only what the operator allows is touched: every file is resolved by
store.confine.resolve_allowed, inside the store or under an allowed root (--allow-root), and a module is
code the server would run, so its files must lie there too, and never among the environment's installed
packages (site-packages, the venv, sys.prefix: an allowed root holding `.venv` would otherwise let a store
run any installed program's zero-argument function) unless the operator names the module (--allow-module
timm, or $PRUNESCOPE_ALLOW_MODULES). The function itself must be a Python function or an nn.Module class
defined in such a file, never a builtin (os:system, builtins:eval) or a function re-exported from elsewhere,
and is refused in one line before it is called. `missing_checkpoint` says why a model cannot be loaded,
before anything outside the allowed places is touched, so the answer reveals nothing about it.

torch comes with the loaders (compute.checkpoint, compute.byo), imported inside `load_model`: a page
that only asks whether a model can be loaded does not load torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import site
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.confine import regular, resolve_allowed
from store.layout import StoreError
from store.reader import parse_json
from store.vocabulary import NAME

if TYPE_CHECKING:
    from torch import nn

CHECKPOINT = "checkpoint"  # the loader kind of a prunescope checkpoint (compute.cards.CHECKPOINT_LOADER)
MODULE = "module"  # package.module:function with its weights (compute.cards.ModelSpec.loader)
ROBUSTBENCH = "robustbench"  # a RobustBench model by name
# Bytes one checkpoint a server loads may take (its file and its declared model): compute.attribution keeps
# up to 8 loaded models, so they hold at most 2 GB together (a ResNet-50 takes 100 MB).
SERVED_MODEL_BUDGET = 256 << 20
MODULES_VARIABLE = "PRUNESCOPE_ALLOW_MODULES"  # installed modules the operator lets a card's loader name


def allowed_modules() -> list[str]:
    """The modules the operator allows from the installed packages (--allow-module, $PRUNESCOPE_ALLOW_MODULES
    separated by os.pathsep or commas); each allows its submodules too."""
    text = os.environ.get(MODULES_VARIABLE, "").replace(",", os.pathsep)
    return [name for name in text.split(os.pathsep) if name]


def allow_modules(names: Sequence[str]) -> None:
    """Add `--allow-module` names to this process's allowed modules (after those of the environment)."""
    current = allowed_modules()
    added = [name for name in names if name and name not in current]
    if added:
        os.environ[MODULES_VARIABLE] = os.pathsep.join(current + added)


def _named_by_operator(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in allowed_modules())


def installed_places() -> list[str]:
    """Where the environment's installed packages and Python's own library lie: site-packages, the venv,
    sys.prefix and the base prefix (resolved). Code there is never a store's model unless named."""
    places = [*site.getsitepackages(), sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    if site.ENABLE_USER_SITE:
        places.append(site.getusersitepackages())
    return sorted({os.path.realpath(place) for place in places if place})


def _installed(path: str | Path) -> bool:
    real = os.path.realpath(path)
    return any(real == place or real.startswith(place.rstrip(os.sep) + os.sep) for place in installed_places())


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
    server would run): under the allowed places and not among the installed packages, unless the operator
    named the module (--allow-module). The top-level package is found first (finding it runs none of its
    code) and must be allowed before a dotted module's parent package is imported to find the rest."""
    module = str(record.get("function", "")).partition(":")[0]
    if module and _named_by_operator(module):
        return None
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
        if _installed(spec.origin):
            return _installed_refusal(module)
        problem = _file_problem(root, spec.origin, "model module")
        if problem:
            return problem
    return None


def _installed_refusal(module: str) -> str:
    top = module.partition(".")[0]
    return (f"Attribution refused: the model's module `{module}` is an installed package of this server, which a "
            f"store may not run unless the operator names it (--allow-module {top} or ${MODULES_VARIABLE}).")


def factory_problem(root: str | Path, function: str) -> str | None:
    """Why a card's `module:function` may not be called by a server, else None: it must be a Python function
    or an nn.Module class (never a builtin such as os:system or builtins:eval, nor another callable object),
    defined in a file the policy allows (`_module_problem`: a function re-exported from an installed
    package is that package's code). Imports the module, whose file the policy has already allowed; calls
    nothing."""
    from compute import byo  # torch: only when a model is loaded

    module_name, _, attribute = function.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute, None)
    if inspect.isclass(factory) and byo.is_factory(factory):
        defined = getattr(sys.modules.get(factory.__module__), "__file__", None)
    elif byo.is_factory(factory):
        defined = inspect.unwrap(factory).__code__.co_filename
    else:
        return (f"Attribution refused: the model's loader `{function}` is "
                f"{'missing' if factory is None else 'a ' + type(factory).__name__}, not a function or an nn.Module "
                "class that builds the model.")
    if _named_by_operator(getattr(factory, "__module__", "") or ""):
        return None
    if not defined or not Path(defined).is_absolute():
        return f"Attribution refused: the model's loader `{function}` is not defined in a file under the allowed roots."
    if _installed(defined):
        return _installed_refusal(str(factory.__module__))
    try:
        resolve_allowed(root, defined, "model module")
    except StoreError as error:
        return f"Attribution refused: {error}."
    return None


def _robustbench_problem(root: str | Path, record: dict[str, Any]) -> str | None:
    if not isinstance(record.get("name"), str) or NAME.fullmatch(record["name"]) is None:  # RobustBench makes a file name of it
        return "Attribution refused: this model's RobustBench name is not a name (letters, digits, '.', '-', '_')."
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
        if record is not None and record.get("kind") == MODULE:
            problem = factory_problem(root, str(record.get("function", "")))
            if problem:
                raise StoreError(problem)
    try:
        kind = CHECKPOINT if record is None else record.get("kind")
        if kind == CHECKPOINT:
            return checkpoint.load(path, SERVED_MODEL_BUDGET if root is not None else None)[0]
        if kind == ROBUSTBENCH:
            return byo.load_robustbench(record["name"], record["dataset"], record["threat_model"],
                                        record.get("model_dir") or byo.ROBUSTBENCH_DIR)
        if kind == MODULE:
            return byo.load_user_model(record["function"], None if path is None else str(path),
                                       normalize=record.get("normalize"), image_size=image_size,
                                       structure=record.get("structure"))
        raise ValueError(f"no loader of kind {kind!r}; known: {CHECKPOINT}, {MODULE}, {ROBUSTBENCH}")
    except (ValueError, byo.ContractError) as error:  # CheckpointError: a damaged or mismatched file; a non-model
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
