"""A pruning study run: one dense model per seed and the pruning zoo around it, then extraction into a store.

The study file is read by compute.study_file; the models are trained by compute.runners. Running is
resumable: a checkpoint that exists is not trained again, and extraction skips complete partitions. Each
checkpoint is found by the digest of its run record (`compute.runs.RunRecord`: arch, dataset, method,
sparsity, seed, training schedule, method options, rewind step, and the digest of the dense run it starts
from): `<out>/checkpoints/<model_id>.<digest>.pt` (compute.identity), model ids
`<arch>-<method>-<percent>-s<seed>`. Editing the study file retrains exactly the models whose record
changed (and those built on a changed dense model), keeps the rest, and prints which; a superseded
checkpoint moves to `<out>/checkpoints/superseded/`, and the store extracts the new one again.
`compute train` and `compute prune` train their one model through the same runners, `compute quantize`
through `quantize_model`; a derived model is `<arch>-<base>-<method>-s<seed>`
(`small_cnn-channel-50-int8-s0`) and its record names its base's digest, so it follows its base.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from compute import byo, checkpoint, datasets, pruning
from compute.cards import from_checkpoint
from compute.datasets.base import Dataset
from compute.extract import run_extraction
from compute.identity import checkpoint_path, retire, rewind_path, why_train
from compute.inference import ExtractSummary
from compute.pruning import base as pruning_base
from compute.runners import Normalisation, quantize_model, quantize_record, train_dense, train_pruned
from compute.runs import RunRecord
from compute.study_file import Study
from compute.train import channel_stats

CORRUPTION_SEED = 0  # as `python -m compute extract`, so stores built either way agree


def rewind_step_of(study: Study, data: Dataset) -> int:
    """The study's rewind_step, or one epoch of dense training when it gives none."""
    if study.rewind_step is not None:
        return int(study.rewind_step)
    return pruning_base.epoch_steps(data.train, study.dense_record(0, 0).config)


def normalisation(study: Study, data: Dataset) -> Normalisation:
    """The study's `normalize`, or the training images' channel statistics when it gives none."""
    return byo.parse_normalize(study.normalize) if study.normalize else channel_stats(data.train.images)


def train_models(study: Study, out: str | Path, device: torch.device, data: Dataset | None = None,
                 say: Callable[[str], None] = print) -> list[Path]:
    """Train the dense models and the zoo into `<out>/checkpoints`, reusing checkpoints whose run record is
    unchanged; `say` gets one line naming what is kept and what is trained, and why."""
    data = data or datasets.load(study.dataset, study.data_dir, study.download)
    stats = normalisation(study, data)
    ckpt_dir = Path(out) / "checkpoints"
    step = rewind_step_of(study, data)
    dense = {seed: study.dense_record(seed, step) for seed in study.seeds}
    dense_paths = {seed: checkpoint_path(ckpt_dir, study.model_id("dense", 0.0, seed), record)
                   for seed, record in dense.items()}
    pruned = [(seed, study.model_id(plan.method, sparsity, seed), study.pruned_record(plan, sparsity, seed, step))
              for plan, sparsity, seed in study.jobs()]
    pruned_paths = [checkpoint_path(ckpt_dir, model_id, record) for _, model_id, record in pruned]
    records = [*dense.values(), *(record for _, _, record in pruned)]
    paths = [*dense_paths.values(), *pruned_paths]
    todo = {path: why_train(path, record) for path, record in zip(paths, records, strict=True)
            if not path.exists()}
    kept = [path.name.split(".")[0] for path in paths if path not in todo]
    say(f"study: {len(kept)} checkpoints kept" + (f" ({', '.join(kept)})" if kept else "")
        + f", {len(todo)} to train" + "".join(f"\n  {path.name.split('.')[0]}: {why}" for path, why in todo.items()))
    with tqdm(total=len(paths), desc="study", unit="model") as bar:
        for seed, path in dense_paths.items():
            if path in todo:
                model_id = study.model_id("dense", 0.0, seed)
                _report(model_id, train_dense(dense[seed], model_id, path, data, stats, device))
                retire(path)
            bar.update(1)
        for (seed, model_id, record), path in zip(pruned, pruned_paths, strict=True):
            if path in todo:
                bar.set_postfix(model=model_id)
                start, rewind = _dense_start(record, dense_paths[seed])
                _report(model_id, train_pruned(record, model_id, path, data, stats, device, start, rewind))
                retire(path)
            bar.update(1)
    return paths + derive_models(study, paths, data, say)


def derive_models(study: Study, paths: list[Path], data: Dataset, say: Callable[[str], None] = print) -> list[Path]:
    """The study's `[[model]]`s for every seed from the checkpoints in `paths` (their bases), reusing
    those whose record (which names the base's digest) is unchanged; returns their checkpoints."""
    by_id = {path.name.split(".")[0]: path for path in paths}
    derived = []
    for seed in study.seeds:
        for plan in study.derived:
            base_id, model_id = study.derived_ids(plan, seed)
            record = quantize_record(by_id[base_id], plan.method, plan.calibration)
            path = checkpoint_path(by_id[base_id].parent, model_id, record)
            if not path.exists():
                say(f"study: {model_id}: {why_train(path, record)}")
                _report(model_id, quantize_model(record, model_id, by_id[base_id], path, data))
                retire(path)
            derived.append(path)
    return derived


def _dense_start(record: RunRecord, dense_path: Path) -> tuple[nn.Module | None, dict[str, torch.Tensor] | None]:
    """The trained dense model and its rewind iterate, each read only when the record's method uses it."""
    method = pruning.get(record.method)
    dense = checkpoint.load(dense_path)[0] if method.from_dense else None
    rewind = checkpoint.load(rewind_path(dense_path))[0].state_dict() if method.needs_rewind else None
    return dense, rewind


def _report(model_id: str, results: dict[str, float]) -> None:
    tqdm.write(f"{model_id}: test accuracy {results['test_accuracy']:.4f}, {results['seconds']:.0f} s")


def extract_models(study: Study, out: str | Path, paths: list[Path], device: torch.device,
                   data: Dataset | None = None) -> ExtractSummary:
    """Extract every checkpoint in `paths` on clean and corrupted test images into the store at `out`."""
    data = data or datasets.load(study.dataset, study.data_dir, study.download)
    entries = [from_checkpoint(path) for path in paths]
    summary = run_extraction(out, entries, data, data.test.subset(study.limit), study.corruptions,
                             study.severities, device=device, seed=CORRUPTION_SEED)
    if summary.reset_models:
        print(f"study: extracted again (training record changed): {', '.join(summary.reset_models)}")
    return summary


def run(study: Study, out: str | Path, device: torch.device, extract_store: bool = True) -> dict[str, float]:
    """Train (resuming) and extract a whole study into the store `out`; returns wall seconds per phase."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = datasets.load(study.dataset, study.data_dir, study.download)
    paths = train_models(study, out, device, data)
    timings["train"] = time.perf_counter() - start
    if extract_store:
        phase = time.perf_counter()
        extract_models(study, out, paths, device, data)
        timings["extract"] = time.perf_counter() - phase
    timings["total"] = time.perf_counter() - start
    return timings
