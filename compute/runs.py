"""What a training or pruning run is: one frozen record, its digest, and the schedules runs default to.

As open_lth's `Desc.hashname`: a run is a frozen dataclass of typed hyper-parameters (`RunRecord`); the
digest of that object names its checkpoint (`<model_id>.<digest>.pt`), and the same object is what the
checkpoint carries, what the `hparams` column of models.parquet holds and whose digest the store's
manifest records (`training`: model_id -> digest). This module is the one place a run's keys are spelled
out; studies, `compute train` and `compute prune` build records here and train them in compute/runners.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from compute import pruning, quantize
from compute.train import TrainConfig

DENSE = "dense"
FINETUNE: Mapping[str, Any] = MappingProxyType({"epochs": 5, "lr": 0.01})
"""The schedule of methods that start from the trained dense model, unless a study or flag says otherwise:
a short fine-tune at a low learning rate. The dense model and methods that start from init train with
TrainConfig's defaults."""

SCHEDULE_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - {"seed"}
RUN_KEY = "run"  # a checkpoint's hparams: {"model_id", RUN_KEY: the record, RESULTS_KEY: what it measured}
RESULTS_KEY = "results"
BASES_KEY = "bases"  # a derived checkpoint's hparams: every model it derives from, nearest first


@dataclass(frozen=True)
class RunRecord:
    """Everything that decides a checkpoint's weights; its digest names the checkpoint, so a checkpoint is
    reused only for exactly this record. `schedule` holds every TrainConfig field but the seed (a changed
    TrainConfig default changes the record); `base` is the digest (or, for a checkpoint without a record,
    the model id) of the dense run a pruned model starts from or rewinds to, None for a fresh start."""

    arch: str
    dataset: str
    method: str
    sparsity: float
    seed: int
    schedule: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    rewind_step: int | None = None
    base: str | None = None

    @property
    def config(self) -> TrainConfig:
        """The training schedule with the run's seed."""
        return TrainConfig(**self.schedule, seed=self.seed)

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the record, first 12 hex digits."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "schedule": dict(self.schedule), "options": dict(self.options)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunRecord:
        """The record `to_dict` wrote; ValueError naming the keys that do not fit."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(raw) - names or {"arch", "dataset", "method", "sparsity", "seed", "schedule"} - set(raw):
            raise ValueError(f"not a run record: keys {sorted(raw)}, expected {sorted(names)}")
        return cls(**raw)

    def changes(self, old: Mapping[str, Any]) -> list[str]:
        """`schedule.epochs 1 -> 2`: each field of this record that differs from `old` (a record's dict)."""
        return _changes(old, self.to_dict())


def _changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    changes = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes.extend(_changes(a, b, f"{prefix}{name}."))
        elif a != b:
            changes.append(f"{prefix}{name} {a!r} -> {b!r}")
    return changes


def schedule(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Every TrainConfig field but the seed: `fields` over TrainConfig's defaults."""
    return {name: value for name, value in TrainConfig(**fields).to_dict().items() if name != "seed"}


def default_schedule(method: str) -> Mapping[str, Any]:
    """What a method trains with unless told: FINETUNE from the dense model, TrainConfig's defaults else."""
    return FINETUNE if method != DENSE and pruning.get(method).from_dense else MappingProxyType({})


def dense_run(arch: str, dataset: str, seed: int, fields: Mapping[str, Any], rewind_step: int) -> RunRecord:
    """A dense model trained with `fields` (over TrainConfig's defaults), recording ltr's rewind iterate
    after `rewind_step` optimiser steps."""
    return RunRecord(arch, dataset, DENSE, 0.0, seed, schedule(fields), rewind_step=rewind_step)


def pruned_run(arch: str, dataset: str, method: str, sparsity: float, seed: int, fields: Mapping[str, Any],
               options: Mapping[str, Any], base: str | None, rewind_step: int | None) -> RunRecord:
    """A model pruned by `method`; `base` and `rewind_step` are kept only where the method uses them (it
    starts from the dense model, or rewinds to its early iterate)."""
    chosen = pruning.get(method)
    uses_dense = chosen.from_dense or chosen.needs_rewind
    return RunRecord(arch, dataset, method, float(sparsity), seed, schedule(fields), dict(options),
                     rewind_step=rewind_step if chosen.needs_rewind else None,
                     base=base if uses_dense else None)


def quantized_run(meta: Mapping[str, Any], method: str, options: Mapping[str, Any], base: str) -> RunRecord:
    """A model quantized by `method` from the checkpoint whose metadata is `meta` (named `base`, its
    `identity`): it keeps the base's arch, dataset, target sparsity and seed, trains nothing (an empty
    schedule), and its method names the chain when the base is itself compressed (`channel+int8`)."""
    start = card(meta)
    family = method if start["method"] == DENSE else f"{start['method']}+{method}"
    return RunRecord(meta["arch"], meta.get("dataset", ""), family, start["target_sparsity"], start["seed"], {},
                     dict(options), base=base)


def operation(record: RunRecord) -> str:
    """How the model was made from its base, as the lineage tree labels the edge: `train` (a dense model),
    `prune ft 90 %, fine-tune`, `prune channel 50 %, fine-tune`, `2:4, fine-tune`, `int8`; methods that
    train from init say `from init`."""
    if record.method.rpartition("+")[2] in quantize.METHODS:
        return record.method.rpartition("+")[2]
    if record.method == DENSE:
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
    return [record.base] if record is not None and record.base else []


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
    return {"method": hparams.get("method", DENSE), "target_sparsity": float(hparams.get("target_sparsity", 0.0)),
            "seed": int(hparams.get("seed", 0)), "hparams": json.dumps(hparams, sort_keys=True)}
