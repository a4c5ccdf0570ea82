"""Model cards of models from elsewhere: what a model is and how it is loaded again.

A `ModelSpec` is one bring-your-own model as the user describes it, by `extract` flags (`--model` /
`--robustbench` with `--method --sparsity --model-seed --base --arch`) or by one table of a models file
(`extract --models FILE.toml`, the same keys; the table's name is the model id):

    [resnet10t-dense]
    model = "my_timm:resnet10t"          # package.module:function (or robustbench = "NAME")
    weights = "runs/dense.pt"
    normalize = "cifar10"
    method = "dense"
    seed = 0

    [resnet10t-mag70]
    model = "my_timm:resnet10t"
    weights = "runs/mag70.pt"
    normalize = "cifar10"
    method = "magnitude"
    sparsity = 0.7
    seed = 0
    base = "resnet10t-dense"

The card (`card`) is the row's description in models.parquet (store.layout.MODEL_SCHEMA): arch as the user
names it (default: the function's or RobustBench name, never a wrapper class), method (default
"external"), target sparsity, seed (null when not given: the model forms no replicate group), base, and
the `loader` JSON that `load` reads back (the dashboard's attribution loads models with it).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from compute import byo

EXTERNAL = "external"  # the method of a model nobody labelled
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("corruptions", "Linf", "L2")
# A models file's keys: the fields of ModelSpec but its id (the table's name), as the flags spell them.
FILE_KEYS = {"model": "function", "weights": "weights", "normalize": "normalize", "robustbench": "robustbench",
             "threat_model": "threat_model", "arch": "arch", "method": "method", "sparsity": "sparsity",
             "seed": "seed", "base": "base"}


@dataclass(frozen=True)
class ModelSpec:
    """One model from elsewhere: how to load it (`function` + `weights` + `normalize`, or `robustbench` +
    `threat_model`) and its card (arch, method, sparsity, seed, base)."""

    model_id: str
    function: str | None = None
    weights: str | None = None
    normalize: str | None = None
    robustbench: str | None = None
    threat_model: str = "corruptions"
    arch: str | None = None
    method: str = EXTERNAL
    sparsity: float = 0.0
    seed: int | None = None
    base: str | None = None

    def problems(self) -> list[tuple[str, str]]:
        """(key, what is wrong) for each bad value; empty when the spec can be loaded."""
        found = []
        if (self.function is None) == (self.robustbench is None):
            found.append(("model", "give exactly one of model = 'package.module:function' and robustbench = 'NAME'"))
        if self.function is not None:
            module, sep, attribute = self.function.partition(":")
            if not (sep and module and attribute):
                found.append(("model", f"must look like 'package.module:function', got {self.function!r}"))
        if self.robustbench is not None and (self.weights or self.normalize):
            found.append(("weights" if self.weights else "normalize",
                          "applies to model = 'module:function'; RobustBench models carry their own"))
        if self.threat_model not in THREAT_MODELS:
            found.append(("threat_model", f"must be one of {', '.join(THREAT_MODELS)}, got {self.threat_model!r}"))
        if self.normalize is not None:
            try:
                byo.parse_normalize(self.normalize)
            except ValueError as error:
                found.append(("normalize", str(error).replace("--normalize ", "")))
        if not 0.0 <= self.sparsity < 1.0:
            found.append(("sparsity", f"must be a fraction in [0, 1), got {self.sparsity!r}"))
        if self.seed is not None and self.seed < 0:
            found.append(("seed", f"must be a non-negative integer, got {self.seed!r}"))
        if self.base == self.model_id:
            found.append(("base", f"a model cannot be its own base ({self.base!r})"))
        return found

    def loader(self, dataset: str, model_dir: str | None = None) -> dict[str, Any]:
        """How the model is loaded again (models.parquet `loader`); the weights go to the `checkpoint` column."""
        if self.robustbench is not None:
            return {"kind": "robustbench", "name": self.robustbench, "dataset": dataset,
                    "threat_model": self.threat_model, "model_dir": model_dir}
        return {"kind": "module", "function": self.function, "normalize": self.normalize}

    def card(self) -> dict[str, Any]:
        """The models.parquet fields this spec sets: arch, method, target_sparsity, seed, base."""
        name = self.robustbench or (self.function or "").rpartition(":")[2]
        return {"arch": self.arch or name, "method": self.method, "target_sparsity": float(self.sparsity),
                "seed": self.seed, "base": self.base}


def load(loader: Mapping[str, Any], weights: str | Path | None, image_size: int) -> nn.Module:
    """The model a `loader` record describes (see ModelSpec.loader), behind the model contract."""
    if loader["kind"] == "robustbench":
        return byo.load_robustbench(loader["name"], loader["dataset"], loader["threat_model"],
                                    loader.get("model_dir") or byo.ROBUSTBENCH_DIR)
    if loader["kind"] == "module":
        return byo.load_user_model(loader["function"], None if weights is None else str(weights),
                                   normalize=loader.get("normalize"), image_size=image_size)
    raise ValueError(f"no loader of kind {loader.get('kind')!r}; known: module, robustbench")


def read_models_file(path: str | Path) -> list[ModelSpec]:
    """The models a models file describes, every table checked; ValueError naming the file, table and key.
    Relative `weights` paths are relative to the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"models file {path}: cannot read it ({error.strerror or error})") from None
    except tomllib.TOMLDecodeError as error:
        twice = re.match(r"Cannot declare \('?(.*?)'?,\) twice", str(error))
        if twice:  # tomllib refuses a table declared twice: a model id given twice
            raise ValueError(f"models file {path}: table [{twice.group(1)}] appears twice; each model needs its "
                             "own id") from None
        raise ValueError(f"models file {path}: not valid TOML ({error})") from None
    if not raw:
        raise ValueError(f"models file {path}: no [MODEL_ID] tables")
    specs = []
    for table, values in raw.items():
        where = f"models file {path}: table [{table}]"
        if not isinstance(values, dict):
            raise ValueError(f"{where}: must be a table of keys ({', '.join(FILE_KEYS)}), got a value")
        unknown = sorted(set(values) - set(FILE_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(FILE_KEYS)}")
        arguments = {}
        for key, value in values.items():
            name = FILE_KEYS[key]
            expected, described = ((float, int), "a number") if name == "sparsity" else \
                (int, "an integer") if name == "seed" else (str, "a string")
            if isinstance(value, bool) or not isinstance(value, expected):
                raise ValueError(f"{where}: key {key!r} must be {described}, got {value!r}")
            arguments[name] = value
        if "weights" in arguments:  # relative to the models file, wherever the command runs
            arguments["weights"] = str(path.parent / arguments["weights"])
        spec = ModelSpec(model_id=table, **arguments)
        for key, problem in spec.problems():
            raise ValueError(f"{where}: key {key!r}: {problem}")
        specs.append(spec)
    return specs


def check_lineage(specs: Sequence[ModelSpec], known: Sequence[str], where: str = "") -> None:
    """Every base names a model of `specs` or of the store (`known`), and no chain of bases is a cycle;
    ValueError naming the model and its `base`. Run before anything is written."""
    ids = {spec.model_id for spec in specs}
    bases = {spec.model_id: spec.base for spec in specs if spec.base is not None}
    for spec in specs:
        if spec.base is not None and spec.base not in ids and spec.base not in known:
            raise ValueError(f"{where}table [{spec.model_id}]: key 'base': no model {spec.base!r} in this run or "
                             f"the store (known: {', '.join(sorted({*ids, *known}))})")
    for start in bases:
        seen, current = [start], bases[start]
        while current in bases:
            if current in seen:
                cycle = " -> ".join([*seen[seen.index(current):], current])
                raise ValueError(f"{where}table [{start}]: key 'base': the bases form a cycle ({cycle})")
            seen.append(current)
            current = bases[current]
