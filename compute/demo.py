"""The demo: a real pruning study on the embedded `digits` dataset, run by `compute.study`.

The study is the file studies/digits.toml (`--quick`: studies/digits-quick.toml): a dense small CNN, all
ten methods of the zoo (two sparsities for ft and lrr, one high sparsity for the other masks, channel
pruning at 50 %, 2:4 sparsity) and the dense model quantized to int8, extracted
on clean images and all 19 corruptions at severities 1, 3 and 5. Then the 2-D views of the Geometric
similarity and Embedding pages are computed (compute.embed), so every page shows content on a fresh
clone. Every step is skipped when its output already exists and is up to date.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from compute import study as studies
from compute.embed import EmbedPlan, embed_store, embeddings_fresh
from compute.study_file import Study

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def demo_study() -> Study:
    """The demo study: studies/digits.toml."""
    return Study.from_toml(STUDIES / "digits.toml")


def quick_study() -> Study:
    """Seconds, not minutes (studies/digits-quick.toml): three methods, 60 test images, 3 corruptions."""
    return Study.from_toml(STUDIES / "digits-quick.toml")


@dataclass(frozen=True)
class DemoPlan:
    """What the demo trains and extracts; `quick` is the tiny setting the tests use."""

    study: Study = field(default_factory=demo_study)
    embed: EmbedPlan = field(default_factory=EmbedPlan)

    @classmethod
    def quick(cls) -> DemoPlan:
        """PCA instead of UMAP: the same files in a second, without numba's one-minute compile."""
        return cls(study=quick_study(), embed=EmbedPlan(projection="pca"))


def build(out: str | Path, plan: DemoPlan, device: torch.device,
          severities: Sequence[int] | None = None) -> dict[str, float]:
    """Build the demo store in `out` (checkpoints in `out/checkpoints`); returns wall time per phase."""
    study = plan.study
    if severities:
        study = dataclasses.replace(study, severities=tuple(severities))
    timings = studies.run(study, out, device)
    start = time.perf_counter()
    if not embeddings_fresh(out, plan.embed):
        embed_store(out, plan.embed)
    timings["embed"] = time.perf_counter() - start
    return timings
