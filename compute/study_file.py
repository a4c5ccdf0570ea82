"""The study file: a TOML file read and checked into a `Study`, everything a study trains and extracts.

A study file (see docs/pruning.md and studies/):

    arch = "small_cnn"             # compute.models registry name
    dataset = "digits"             # compute.datasets registry name; data_dir / download for files
    seeds = [0]
    severities = [1, 3, 5]         # corruptions = [...] picks some (default: all 19); limit = N test images
    rewind_step = 20               # ltr's rewind iterate (default: one epoch of dense training)

    [dense]                        # schedule fields: the dense model, and methods that start from init
    epochs = 12
    [finetune]                     # schedule fields: methods that start from the dense model
    epochs = 3                     # (over compute.runs.FINETUNE: 5 epochs at lr 0.01)
    lr = 0.01
    [methods.lrr]                  # one table per method: sparsities, then schedule fields or options
    sparsities = [0.5, 0.9]
    rounds = 2
    [methods.nm]                   # N:M sparsity: the pattern fixes the sparsity
    pattern = "2:4"
    [[model]]                      # a model derived from another of the study, for every seed:
    base = "channel-50"            # "dense" or "<method>-<percent>" as in the model ids
    op = "quantize"                # int8 (method = "int8"), calibrated on 512 training images (calibration)

Every mistake raises StudyError naming the file and the key, before any training. A `Study` gives the
run record of each of its models (`dense_record`, `pruned_record`) and their ids (compute.identity);
compute.study trains and extracts them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compute import byo, corruptions, datasets, identity, models, pruning, quantize, runs
from compute.runs import SCHEDULE_FIELDS, RunRecord

STUDY_KEYS = frozenset({"arch", "dataset", "data_dir", "download", "seeds", "severities", "corruptions",
                        "limit", "rewind_step", "dense", "finetune", "methods", "normalize", "model"})
OPERATIONS = {"quantize": quantize.METHODS}  # [[model]] op -> its methods (the first is the default)
DERIVED_KEYS = frozenset({"base", "op", "method", "calibration"})


class StudyError(ValueError):
    """A study file or value that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class MethodPlan:
    """One method of a study: the sparsities to prune to, training overrides and method options."""

    method: str
    sparsities: tuple[float, ...]
    train: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DerivedPlan:
    """A `[[model]]` of a study: operation `op` (with `method`) applied to the model `base` of every seed."""

    base: str  # "dense" or "<method>-<percent>", the model id without arch and seed
    op: str
    method: str
    calibration: int = quantize.CALIBRATION  # training images that calibrate int8 activation ranges


@dataclass(frozen=True)
class Study:
    """Everything a study trains and extracts; `from_toml` reads one from a file."""

    arch: str
    dataset: str
    methods: tuple[MethodPlan, ...]
    data_dir: str | None = None
    download: bool = False
    seeds: tuple[int, ...] = (0,)
    dense: Mapping[str, Any] = field(default_factory=dict)
    finetune: Mapping[str, Any] = field(default_factory=dict)  # over compute.runs.FINETUNE
    rewind_step: int | None = None
    corruptions: tuple[str, ...] = corruptions.NAMES
    severities: tuple[int, ...] = (1, 3, 5)
    limit: int | None = None
    normalize: str | None = None  # "imagenet" | "cifar10" | "cifar100" | "MEAN,STD"; default: training-set stats
    derived: tuple[DerivedPlan, ...] = ()

    @classmethod
    def from_toml(cls, path: str | Path) -> Study:
        """Read and check a study file; every mistake raises StudyError naming the file and key."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise StudyError(f"study file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise StudyError(f"study file {path} is not valid TOML: {error}") from error
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "study") -> Study:
        unknown = sorted(set(raw) - STUDY_KEYS)
        if unknown:
            raise StudyError(f"{source}: unknown keys {unknown}; known: {sorted(STUDY_KEYS)}")
        for key in ("arch", "dataset", "methods"):
            if key not in raw:
                raise StudyError(f"{source}: missing key {key!r}")
        if not isinstance(raw["methods"], Mapping) or not raw["methods"]:
            raise StudyError(f"{source}: [methods.NAME] tables are required (known: {', '.join(pruning.NAMES)})")
        study = cls(
            arch=raw["arch"], dataset=raw["dataset"],
            methods=tuple(_method_plan(name, table, source) for name, table in raw["methods"].items()),
            data_dir=raw.get("data_dir"), download=bool(raw.get("download", False)),
            seeds=tuple(int(s) for s in raw.get("seeds", (0,))),
            dense=_train_table(raw.get("dense", {}), f"{source} [dense]"),
            finetune=_train_table(raw.get("finetune", {}), f"{source} [finetune]"),
            rewind_step=raw.get("rewind_step"),
            corruptions=tuple(raw.get("corruptions", corruptions.NAMES)),
            severities=tuple(int(s) for s in raw.get("severities", (1, 3, 5))),
            limit=raw.get("limit"), normalize=raw.get("normalize"),
            derived=tuple(_derived_plan(table, index, source) for index, table in enumerate(raw.get("model", []))),
        )
        study.check(source)
        return study

    def check(self, source: str = "study") -> None:
        """Raise StudyError for values the run would trip on later (after hours of training)."""
        if self.arch not in models.NAMES:
            raise StudyError(f"{source}: unknown arch {self.arch!r}; known: {', '.join(models.NAMES)}")
        if self.dataset not in datasets.NAMES:
            raise StudyError(f"{source}: unknown dataset {self.dataset!r}; known: {', '.join(datasets.NAMES)}")
        unknown = sorted(set(self.corruptions) - set(corruptions.NAMES))
        if unknown:
            raise StudyError(f"{source}: unknown corruptions {unknown}; known: {', '.join(corruptions.NAMES)}")
        if not self.seeds or any(s < 1 or s > 5 for s in self.severities):
            raise StudyError(f"{source}: need at least one seed and severities between 1 and 5")
        if self.normalize is not None:
            try:
                byo.parse_normalize(str(self.normalize))
            except ValueError as error:
                raise StudyError(f"{source}: normalize: {error}") from None
        bases = {"dense", *(identity.model_tag(plan.method, s) for plan in self.methods for s in plan.sparsities)}
        for index, plan in enumerate(self.derived):
            if plan.base not in bases:
                raise StudyError(f"{source} [[model]] {index + 1}: base {plan.base!r} is no model of the study; "
                                 f"known: {', '.join(sorted(bases))}")

    def model_id(self, method: str, sparsity: float, seed: int) -> str:
        return identity.model_id(self.arch, method, sparsity, seed)

    def derived_ids(self, plan: DerivedPlan, seed: int) -> tuple[str, str]:
        """(the base's model id, the derived model's id) for `seed`."""
        base = identity.tagged_id(self.arch, plan.base, seed)
        return base, identity.derived_id(base, plan.method)

    def dense_record(self, seed: int, rewind_step: int) -> RunRecord:
        return runs.dense_run(self.arch, self.dataset, seed, self.dense, rewind_step)

    def pruned_record(self, plan: MethodPlan, sparsity: float, seed: int, rewind_step: int) -> RunRecord:
        """The plan's fields over `[finetune]` (itself over compute.runs.FINETUNE) for methods that start
        from the dense model, over `[dense]` for the others."""
        start = self.finetune if pruning.get(plan.method).from_dense else self.dense
        fields = {**runs.default_schedule(plan.method), **start, **plan.train}
        return runs.pruned_run(self.arch, self.dataset, plan.method, sparsity, seed, fields,
                               plan.options, self.dense_record(seed, rewind_step).digest, rewind_step)

    def jobs(self) -> list[tuple[MethodPlan, float, int]]:
        """(method plan, sparsity, seed) of every pruned model, in the order they are trained."""
        return [(plan, sparsity, seed) for seed in self.seeds for plan in self.methods for sparsity in plan.sparsities]


def _derived_plan(table: Any, index: int, source: str) -> DerivedPlan:
    where = f"{source} [[model]] {index + 1}"
    if not isinstance(table, Mapping):
        raise StudyError(f"{where} must be a table with base and op")
    unknown = sorted(set(table) - DERIVED_KEYS)
    if unknown or "base" not in table or "op" not in table:
        raise StudyError(f"{where}: needs base and op, may have method and calibration; got {sorted(table)}")
    op = table["op"]
    if op not in OPERATIONS:
        raise StudyError(f"{where}: unknown op {op!r}; known: {', '.join(OPERATIONS)}")
    method = table.get("method", OPERATIONS[op][0])
    if method not in OPERATIONS[op]:
        raise StudyError(f"{where}: unknown {op} method {method!r}; known: {', '.join(OPERATIONS[op])}")
    calibration = table.get("calibration", quantize.CALIBRATION)
    if not isinstance(calibration, int) or isinstance(calibration, bool) or calibration < 1:
        raise StudyError(f"{where}: calibration must be a number of training images >= 1, got {calibration!r}")
    return DerivedPlan(str(table["base"]), op, method, calibration)


def _train_table(table: Any, source: str) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise StudyError(f"{source} must be a table of TrainConfig fields")
    unknown = sorted(set(table) - SCHEDULE_FIELDS)
    if unknown:
        raise StudyError(f"{source}: unknown training keys {unknown}; known: {sorted(SCHEDULE_FIELDS)}")
    try:
        runs.schedule(table)
    except ValueError as error:
        raise StudyError(f"{source}: {error}") from None
    return dict(table)


def _method_plan(name: str, table: Any, source: str) -> MethodPlan:
    where = f"{source} [methods.{name}]"
    if name not in pruning.METHODS:
        raise StudyError(f"{where}: unknown method; known: {', '.join(pruning.NAMES)}")
    method = pruning.get(name)
    if not isinstance(table, Mapping) or not (table.get("sparsities") or method.implied_sparsity):
        raise StudyError(f"{where}: needs sparsities = [...] (fractions of weights removed, e.g. [0.5, 0.9])")
    rest = {k: v for k, v in table.items() if k != "sparsities"}
    train = _train_table({k: v for k, v in rest.items() if k in SCHEDULE_FIELDS}, where)
    options = {k: v for k, v in rest.items() if k not in SCHEDULE_FIELDS}
    unknown = sorted(set(options) - method.options)
    if unknown:
        raise StudyError(f"{where}: unknown keys {unknown}; training keys: {sorted(SCHEDULE_FIELDS)}, "
                         f"{name} options: {sorted(method.options)}")
    if method.implied_sparsity is not None:
        try:
            implied = method.implied_sparsity(options)
        except ValueError as error:
            raise StudyError(f"{where}: {error}") from None
        if table.get("sparsities", [implied]) != [implied]:
            raise StudyError(f"{where}: the options fix the sparsity at {implied}; leave sparsities out")
        return MethodPlan(name, (implied,), train, options)
    sparsities = tuple(float(s) for s in table["sparsities"])
    if any(not 0.0 < s < 1.0 for s in sparsities):
        raise StudyError(f"{where}: sparsities must be in (0, 1), got {list(sparsities)}")
    return MethodPlan(name, sparsities, train, options)
