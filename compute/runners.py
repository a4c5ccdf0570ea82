"""The training runners: one run record in, one checkpoint out.

`compute study`, `compute train`, `compute prune` and `compute quantize` all train through these, so a
model made by a command carries the record a study would give it: `train_dense` (and `fit_dense`, the
same training in memory), `train_pruned`, and `quantize_model` with its record from `quantize_record`.
`save` is the one place a trained model becomes a checkpoint.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compute import checkpoint, footprint, models, pruning, quantize, runs
from compute.datasets.base import Dataset
from compute.identity import rewind_path
from compute.pruning import base as pruning_base
from compute.runs import RunRecord
from compute.train import accuracy

Normalisation = tuple[list[float], list[float]]  # per-channel mean and std the model divides by


def fit_dense(record: RunRecord, data: Dataset, stats: Normalisation,
              device: torch.device) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A dense model trained in memory as `record` says, and its state at the record's rewind step."""
    torch.manual_seed(record.seed)
    dense = models.build(record.arch, data.num_classes, *stats)
    rewind = pruning_base.train_dense(dense, data.train, record.config, device, rewind_step=record.rewind_step,
                                      description=f"dense s{record.seed}")
    return dense, rewind


def train_dense(record: RunRecord, model_id: str, path: Path, data: Dataset, stats: Normalisation,
                device: torch.device) -> dict[str, float]:
    """Train one dense model into `path`; its rewind iterate is saved first (`rewind_path`), so a dense
    checkpoint implies one. Returns what the run measured."""
    start = time.perf_counter()
    dense, rewind = fit_dense(record, data, stats, device)
    snapshot = models.build(record.arch, data.num_classes, *stats)
    snapshot.load_state_dict(rewind)
    save(rewind_path(path), snapshot, f"{model_id}-rewind", record, data, stats, {})
    results = _results(dense, record.arch, data, device, start)
    save(path, dense, model_id, record, data, stats, results)
    return results


def train_pruned(record: RunRecord, model_id: str, path: Path, data: Dataset, stats: Normalisation,
                 device: torch.device, dense: nn.Module | None,
                 rewind_state: dict[str, torch.Tensor] | None) -> dict[str, float]:
    """Prune (and train) one model as `record` says into `path`: from a copy of `dense` for methods that
    start from the trained dense model, from a fresh init for the others; ltr rewinds to `rewind_state`.
    Returns what the run measured."""
    start = time.perf_counter()
    method = pruning.get(record.method)
    torch.manual_seed(record.seed)
    model = copy.deepcopy(dense) if method.from_dense else models.build(record.arch, data.num_classes, *stats)
    supplied = {"rewind_state": rewind_state} if method.needs_rewind else {}
    pruned = method.prune(model, data.train, record.sparsity, record.config, device, **record.options, **supplied)
    results = _results(pruned, record.arch, data, device, start)
    save(path, pruned, model_id, record, data, stats, results)
    return results


def quantize_record(base_path: Path, method: str, calibration: int) -> RunRecord:
    """The run record of the `method` quantization of the checkpoint at `base_path`, calibrated on
    `calibration` training images; ValueError when that checkpoint is already quantized."""
    meta = checkpoint.read(base_path)
    if "quantization" in meta:
        raise ValueError(f"{base_path} is already quantized ({meta['quantization'].get('method')})")
    options = {"calibration": int(calibration), "backend": quantize.BACKEND}
    return runs.quantized_run(meta, method, options, runs.identity(meta, base_path))


def quantize_model(record: RunRecord, model_id: str, base_path: Path, path: Path, data: Dataset) -> dict[str, float]:
    """Quantize the checkpoint at `base_path` into `path` as `record` says (its int8 body calibrated on
    training images drawn with the record's seed, on CPU); the checkpoint's hparams name every base of the
    chain. Returns what the run measured."""
    start = time.perf_counter()
    model, meta = checkpoint.load(base_path)
    images = data.train.images
    chosen = np.sort(np.random.default_rng(record.seed).permutation(len(images))[:record.options["calibration"]])
    quantize.quantize(model, images[chosen])
    results = _results(model, record.arch, data, quantize.CPU, start)
    checkpoint.save(path, model, arch=meta["arch"], num_classes=meta["num_classes"], mean=meta["mean"],
                    std=meta["std"], dataset=data.name,
                    hparams=runs.checkpoint_hparams(model_id, record, results, [record.base_digest, *runs.lineage(meta)]),
                    structure=meta.get("structure", {}), quantization=dict(quantize.SPEC))
    return results


def _results(model: nn.Module, arch: str, data: Dataset, device: torch.device, start: float) -> dict[str, float]:
    """What a run measured: test accuracy, measured sparsity (against the full `arch`, so removed channels
    count as removed weights), wall seconds (kept apart from its record)."""
    full = models.build(arch, data.num_classes, (0.0,) * 3, (1.0,) * 3)  # widths only: any normalisation
    return {"test_accuracy": accuracy(model, data.test, device), "sparsity": footprint.sparsity(model, full),
            "seconds": time.perf_counter() - start}


def save(path: Path, model: nn.Module, model_id: str, record: RunRecord, data: Dataset, stats: Normalisation,
         results: dict[str, float]) -> None:
    """The one place a trained model becomes a checkpoint: weights, normalisation, run record, results."""
    checkpoint.save(path, model, arch=record.arch, num_classes=data.num_classes, mean=stats[0], std=stats[1],
                    dataset=data.name, hparams=runs.checkpoint_hparams(model_id, record, results))
