"""What a training or pruning run is: one frozen record, its digest, and the schedules runs default to.

As open_lth's `Desc.hashname`: a run is a frozen dataclass of typed hyper-parameters (`RunRecord`); the
digest of that object names its checkpoint (`<model_id>.<digest>.pt`), and the same object is what the
checkpoint carries, what the `hparams` column of models.parquet holds and whose digest the store's
manifest records (`training`: model_id -> digest). This module is the one place a run's keys are spelled
out; studies, `compute train` and `compute prune` build records here and train them in compute/runners.py.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from compute import pruning, quantize
from compute.train import Schedule, TrainConfig
from store.vocabulary import UNPRUNED

FINETUNE: Mapping[str, Any] = MappingProxyType({"epochs": 5, "lr": 0.01})
"""The schedule of methods that start from the trained dense model, unless a study or flag says otherwise:
a short fine-tune at a low learning rate. The dense model and methods that start from init train with
the Schedule's defaults."""

SCHEDULE_FIELDS = frozenset(f.name for f in dataclasses.fields(Schedule))
QUANTIZE_OPTIONS = frozenset({"calibration", "backend"})  # the options of a quantized model's record
RUN_KEY = "run"  # a checkpoint's hparams: {"model_id", RUN_KEY: the record, RESULTS_KEY: what it measured}
RESULTS_KEY = "results"
BASES_KEY = "bases"  # a derived checkpoint's hparams: every model it derives from, nearest first
Scalar = str | int | float | bool  # a method option's value


@dataclass(frozen=True)
class RunRecord:
    """Everything that decides a checkpoint's weights; its digest names the checkpoint, so a checkpoint is
    reused only for exactly this record. `schedule` is None for a run that trains nothing (quantization);
    `options` are the method's keyword options; `base_digest` is the digest (or, for a checkpoint without a
    record, the model id) of the run a model starts from, rewinds to or is derived from, None for a fresh
    start. Constructing one casts every value to its field's type (`from_dict` reads one back)."""

    arch: str
    dataset: str
    method: str
    sparsity: float
    seed: int
    schedule: Schedule | None
    options: Mapping[str, Scalar] = field(default_factory=dict)
    rewind_step: int | None = None
    base_digest: str | None = None

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _cast(f.name, getattr(self, f.name), hints[f.name]))
        known = _known_options(self.method)
        unknown = sorted(set(self.options) - known) if known is not None else []
        if unknown:
            raise ValueError(f"run record: unknown options {unknown} for method {self.method!r}; "
                             f"known: {sorted(known or ())}")

    @property
    def config(self) -> TrainConfig:
        """The training schedule with the run's seed."""
        if self.schedule is None:
            raise ValueError(f"run record of {self.method!r} trains nothing: it has no schedule")
        return TrainConfig(**dataclasses.asdict(self.schedule), seed=self.seed)

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the record's hashed fields (`hashed`), first 12 hex digits."""
        canonical = json.dumps(self.hashed(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def hashed(self) -> dict[str, Any]:
        """What the digest covers: every field of the first record format (FIRST_FORMAT), under the name it
        had then, and every field added since only where it differs from its default, as open_lth's
        `Desc.hashname`. So adding a field with a default keeps every digest and retrains nothing."""
        form = _hashed_fields(self)
        if "schedule" in form:
            form["schedule"] = {} if self.schedule is None else _hashed_fields(self.schedule)
        return {_DIGEST_NAMES.get(name, name): value for name, value in form.items()}

    def to_dict(self) -> dict[str, Any]:
        """Every field (a checkpoint's record, the store's hparams): the schedule as a table, {} for none."""
        schedule = {} if self.schedule is None else dataclasses.asdict(self.schedule)
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "schedule": schedule, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunRecord:
        """The record `to_dict` wrote (or an older one, whose base digest is named `base`), every value cast
        to its field's type; ValueError naming an unknown, missing or ill-typed key."""
        raw = dict(raw)
        if "base" in raw:
            if "base_digest" in raw:
                raise ValueError("run record: both 'base' and 'base_digest' given (one is the other's old name)")
            raw["base_digest"] = raw.pop("base")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in raw:
            if key not in names:
                raise ValueError(f"not a run record: unknown key {key!r}; expected {names}")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f"not a run record: missing keys {missing}")
        return cls(**raw)

    def changes(self, old: Mapping[str, Any]) -> list[str]:
        """`schedule.epochs 1 -> 2`: each field of this record that differs from `old` (a record's dict)."""
        return _changes(old, self.to_dict())


# The fields of the first record format (by their names now; _DIGEST_NAMES gives the name each is hashed
# under): always hashed, so the digests of every checkpoint trained since (and the stores' `training`
# records) stay the same. Written out, never derived
# from the dataclasses: a field added later is not in it, and is hashed only when it differs from its default.
FIRST_FORMAT: Mapping[type, frozenset[str]] = MappingProxyType({
    RunRecord: frozenset({"arch", "dataset", "method", "sparsity", "seed", "schedule", "options", "rewind_step",
                          "base_digest"}),
    Schedule: frozenset({"epochs", "batch_size", "lr", "momentum", "weight_decay", "crop_padding", "flip"}),
})
_DIGEST_NAMES = {"base_digest": "base"}  # a field's name in the digest: the one it had when digests began


def _hashed_fields(value: Any) -> dict[str, Any]:
    """The fields of a record or schedule the digest covers: those of the first format, and the others
    where they differ from their default."""
    first = next((names for kind, names in FIRST_FORMAT.items() if isinstance(value, kind)), frozenset())
    form = {}
    for f in dataclasses.fields(value):
        current = getattr(value, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name in first or current != default:
            form[f.name] = dict(current) if isinstance(current, Mapping) else current
    return form


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    """The resolved annotation of each field of dataclass `kind`."""
    return typing.get_type_hints(kind)


def _cast(where: str, value: Any, kind: Any) -> Any:
    """`value` as type `kind` (a field's annotation); ValueError naming `where` when it is not one. An int
    is a float (and stays as written: the digest hashes it so); an integral float is an int."""
    args = typing.get_args(kind)
    if type(None) in args:
        if value is None:
            return None
        kind = next(arg for arg in args if arg is not type(None))
    if kind is Schedule:
        if isinstance(value, Schedule):
            return value
        if isinstance(value, Mapping) and not value:
            return None  # a run that trains nothing
        return schedule(value, where)
    if typing.get_origin(kind) is Mapping:
        return _options(where, value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"run record: {where} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def _options(where: str, value: Any) -> Mapping[str, Scalar]:
    """A method's options: a read-only mapping of names to scalar values."""
    if not isinstance(value, Mapping):
        raise ValueError(f"run record: {where} must be a table of option = value, got {value!r}")
    for key, option in value.items():
        if not isinstance(key, str) or not isinstance(option, (str, int, float, bool)):
            raise ValueError(f"run record: {where}.{key} must be a name with a number, string or boolean value, "
                             f"got {option!r}")
    return MappingProxyType(dict(value))


def _known_options(method: str) -> frozenset[str] | None:
    """The options a record of `method` may carry; None for a method this code does not know."""
    if method == UNPRUNED:
        return frozenset()
    if method.rpartition("+")[2] in quantize.METHODS:
        return QUANTIZE_OPTIONS
    return pruning.METHODS[method].options if method in pruning.METHODS else None


def _changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    changes = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes.extend(_changes(a, b, f"{prefix}{name}."))
        elif a != b:
            changes.append(f"{prefix}{name} {a!r} -> {b!r}")
    return changes


def schedule(fields: Mapping[str, Any] | Schedule, where: str = "schedule") -> Schedule:
    """`fields` over the Schedule's defaults, each cast to its field's type; ValueError naming an unknown or
    ill-typed key (`where` says whose)."""
    if isinstance(fields, Schedule):
        return fields
    if not isinstance(fields, Mapping):
        raise ValueError(f"run record: {where} must be a table of schedule fields, got {fields!r}")
    unknown = sorted(set(fields) - SCHEDULE_FIELDS)
    if unknown:
        raise ValueError(f"run record: unknown {where} keys {unknown}; known: {sorted(SCHEDULE_FIELDS)}")
    hints = _hints(Schedule)
    return Schedule(**{name: _cast(f"{where}.{name}", value, hints[name]) for name, value in fields.items()})


def default_schedule(method: str) -> Mapping[str, Any]:
    """What a method trains with unless told: FINETUNE from the dense model, the Schedule's defaults else."""
    return FINETUNE if method != UNPRUNED and pruning.get(method).from_dense else MappingProxyType({})


def dense_run(arch: str, dataset: str, seed: int, fields: Mapping[str, Any], rewind_step: int) -> RunRecord:
    """A dense model trained with `fields` (over the Schedule's defaults), recording ltr's rewind iterate
    after `rewind_step` optimiser steps."""
    return RunRecord(arch, dataset, UNPRUNED, 0.0, seed, schedule(fields), rewind_step=rewind_step)


def pruned_run(arch: str, dataset: str, method: str, sparsity: float, seed: int,
               fields: Mapping[str, Any] | Schedule, options: Mapping[str, Any], base_digest: str | None,
               rewind_step: int | None) -> RunRecord:
    """A model pruned by `method`; `base_digest` and `rewind_step` are kept only where the method uses them
    (it starts from the dense model, or rewinds to its early iterate)."""
    chosen = pruning.get(method)
    uses_dense = chosen.from_dense or chosen.needs_rewind
    return RunRecord(arch, dataset, method, float(sparsity), seed, schedule(fields), dict(options),
                     rewind_step=rewind_step if chosen.needs_rewind else None,
                     base_digest=base_digest if uses_dense else None)


def quantized_run(meta: Mapping[str, Any], method: str, options: Mapping[str, Any], base_digest: str) -> RunRecord:
    """A model quantized by `method` from the checkpoint whose metadata is `meta` (named `base_digest`, its
    `identity`): it keeps the base's arch, dataset, target sparsity and seed, trains nothing (no
    schedule), and its method names the chain when the base is itself compressed (`channel+int8`)."""
    start = card(meta)
    family = method if start["method"] == UNPRUNED else f"{start['method']}+{method}"
    return RunRecord(meta["arch"], meta.get("dataset", ""), family, start["target_sparsity"], start["seed"], None,
                     dict(options), base_digest=base_digest)


def operation(record: RunRecord) -> str:
    """How the model was made from its base, as the lineage tree labels the edge: `train` (a dense model),
    `prune ft 90 %, fine-tune`, `prune channel 50 %, fine-tune`, `2:4, fine-tune`, `int8`; methods that
    train from init say `from init`."""
    if record.method.rpartition("+")[2] in quantize.METHODS:
        return record.method.rpartition("+")[2]
    if record.method == UNPRUNED:
        return "train"
    method = pruning.get(record.method)
    label = (str(record.options.get("pattern", "2:4")) if method.implied_sparsity is not None
             else f"prune {record.method} {record.sparsity:.0%}".replace("%", " %"))
    return f"{label}, fine-tune" if method.from_dense else f"{label} from init"


def checkpoint_hparams(model_id: str, record: RunRecord, results: Mapping[str, Any],
                       bases: Sequence[str] = ()) -> dict[str, Any]:
    """What a prunescope checkpoint says about its model: its id, its run record, what the run measured
    (test accuracy, seconds, size and latency), kept apart from the record so they never enter the digest,
    and for a chain (channel -> int8) every base it derives from."""
    return {"model_id": model_id, RUN_KEY: record.to_dict(), RESULTS_KEY: dict(results),
            **({BASES_KEY: list(bases)} if bases else {})}


def identity(meta: Mapping[str, Any], path: str | Path) -> str:
    """How a derived model names the checkpoint it starts from: its run digest, else its model id, else
    the file's stem."""
    record = of_checkpoint(meta)
    return record.digest if record else meta.get("hparams", {}).get("model_id") or Path(path).stem


def lineage(meta: Mapping[str, Any]) -> list[str]:
    """Every model a checkpoint derives from, nearest first: the recorded chain, else its record's base."""
    hparams = meta.get("hparams", {})
    if BASES_KEY in hparams:
        return list(hparams[BASES_KEY])
    record = of_checkpoint(meta)
    return [record.base_digest] if record is not None and record.base_digest else []


def of_checkpoint(meta: Mapping[str, Any]) -> RunRecord | None:
    """The run record a checkpoint was trained from; None for checkpoints without one (written before
    records, or by other code)."""
    raw = meta.get("hparams", {}).get(RUN_KEY)
    return None if raw is None else RunRecord.from_dict(raw)


def card(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The models.parquet fields a checkpoint's metadata gives: method, target_sparsity, seed and hparams
    (the run record as JSON). A checkpoint without a record (`compute train`/`prune` before records, a
    hand-made one, `extract --model`) gives the keys its hparams carry, and those hparams."""
    record = of_checkpoint(meta)
    if record is not None:
        return {"method": record.method, "target_sparsity": record.sparsity, "seed": record.seed,
                "hparams": json.dumps(record.to_dict(), sort_keys=True)}
    hparams = meta.get("hparams", {})
    return {"method": hparams.get("method", UNPRUNED), "target_sparsity": float(hparams.get("target_sparsity", 0.0)),
            "seed": int(hparams.get("seed", 0)), "hparams": json.dumps(hparams, sort_keys=True)}
