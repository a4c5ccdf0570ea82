"""The demo study on the embedded `digits` dataset: a dense small CNN and its pruned variants, extracted on
clean and corrupted test images into a store. Every step is skipped when its output already exists."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from compute import checkpoint, corruptions, datasets, models, pruning
from compute.extract import ExtractModel, extract, model_row
from compute.train import TrainConfig, accuracy, channel_stats, train
from store import writer

ARCH = "small_cnn"


@dataclass(frozen=True)
class DemoPlan:
    """What the demo trains and extracts; `quick` is the tiny setting the tests use."""

    dense_epochs: int = 12
    finetune_epochs: int = 5
    lr: float = 0.05
    variants: tuple[tuple[str, float], ...] = (("ft", 0.8),)
    corruptions: tuple[str, ...] = corruptions.NAMES
    severities: tuple[int, ...] = (1, 3, 5)
    limit: int | None = None
    seed: int = 0

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(dense_epochs=2, finetune_epochs=1, corruptions=corruptions.NAMES[:2] + ("contrast",),
                   severities=(1, 5), limit=60)


def _model_id(method: str, sparsity: float, seed: int) -> str:
    return f"{ARCH}-dense-s{seed}" if method == "dense" else f"{ARCH}-{method}-{round(sparsity * 100)}-s{seed}"


def build(out: str | Path, plan: DemoPlan, device: torch.device,
          severities: Sequence[int] | None = None) -> dict[str, float]:
    """Build the demo store in `out`; returns wall time per phase in seconds."""
    out = Path(out)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = datasets.load("digits")
    mean, std = channel_stats(data.train.images)
    meta = {"arch": ARCH, "num_classes": data.num_classes, "mean": mean, "std": std, "dataset": data.name}
    ckpt_dir = out / "checkpoints"

    dense_path = ckpt_dir / f"{_model_id('dense', 0.0, plan.seed)}.pt"
    if not dense_path.exists():
        torch.manual_seed(plan.seed)
        dense = models.build(ARCH, data.num_classes, mean, std)
        config = TrainConfig(epochs=plan.dense_epochs, lr=plan.lr, seed=plan.seed)
        train(dense, data.train, config, device, description="dense")
        hparams = {"model_id": dense_path.stem, "method": "dense", "target_sparsity": 0.0, "seed": plan.seed,
                   "train": config.to_dict(), "test_accuracy": accuracy(dense, data.test, device)}
        checkpoint.save(dense_path, dense, hparams=hparams, **meta)
    dense, dense_meta = checkpoint.load(dense_path)
    timings["dense"] = time.perf_counter() - start

    paths = [dense_path]
    for method, sparsity in plan.variants:
        phase = time.perf_counter()
        path = ckpt_dir / f"{_model_id(method, sparsity, plan.seed)}.pt"
        paths.append(path)
        if path.exists():
            continue
        torch.manual_seed(plan.seed)
        config = TrainConfig(epochs=plan.finetune_epochs, lr=plan.lr / 5, seed=plan.seed)
        pruned = pruning.get(method)(copy.deepcopy(dense), data.train, sparsity, config, device)
        hparams = {"model_id": path.stem, "method": method, "target_sparsity": sparsity, "seed": plan.seed,
                   "parent": dense_path.stem, "finetune": config.to_dict()}
        checkpoint.save(path, pruned, hparams=hparams, **meta)
        timings[f"{method}-{sparsity}"] = time.perf_counter() - phase

    phase = time.perf_counter()
    test = data.test.subset(plan.limit)
    chosen = tuple(severities or plan.severities)
    writer.init_store(out, dataset=data.name, class_names=data.class_names, images=test.images,
                      labels=test.labels, corruptions=plan.corruptions, severities=chosen)
    entries = []
    for path in paths:
        model, model_meta = checkpoint.load(path)
        model_id = model_meta["hparams"]["model_id"]
        entries.append(ExtractModel(model_id, model, model_row(model_id, model, model_meta, str(path.resolve()))))
    extract(out, entries, test, data.num_classes, plan.corruptions, chosen, device=device, seed=plan.seed)
    writer.upsert_models(out, [entry.info for entry in entries])
    timings["extract"] = time.perf_counter() - phase
    timings["total"] = time.perf_counter() - start
    return timings
