"""The work list of an extraction: every (model, corruption, severity) partition, and its shards.

The list is setting-major: all models under the clean images, then all under each corruption and
severity, so the models that follow each other share one setting's corrupted images, made once. `Shard`
cuts that list into contiguous, deterministic parts for schedulers that fan out (Slurm arrays, Ray,
several machines); shards write disjoint partitions of one store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from store import layout


def settings(corruption_names: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int]]:
    """The settings of one model: clean first, then every (corruption, severity)."""
    return [(layout.CLEAN, 0)] + [(name, int(s)) for name in corruption_names for s in severities]


class Partition(NamedTuple):
    """One unit of work and one file of the store: a model under one setting."""

    model_id: str
    corruption: str
    severity: int

    @property
    def setting(self) -> tuple[str, int]:
        return self.corruption, self.severity


def work_list(model_ids: Sequence[str], corruption_names: Sequence[str],
              severities: Sequence[int]) -> list[Partition]:
    """Every partition, setting-major (all models under one setting, then the next setting)."""
    return [Partition(model_id, name, severity) for name, severity in settings(corruption_names, severities)
            for model_id in model_ids]


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count): a contiguous, deterministic slice of the work list.

    Every shard must be given the same models, corruptions and severities; together the shards cover
    the work list exactly once. Contiguous slices keep a setting's models together, so each shard
    makes a setting's corrupted images at most once.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= K < N in K/N "
                             "(e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-(N-1))")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'K/N' -> Shard(K, N)."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"shard must look like K/N with 0 <= K < N, got {text!r}") from None
        return cls(index, count)

    def select(self, items: Sequence[Any]) -> list[Any]:
        start, stop = (len(items) * k // self.count for k in (self.index, self.index + 1))
        return list(items[start:stop])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
