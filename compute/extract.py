"""Extraction: run models over clean and corrupted test images, compute geometry in the same pass,
and write one Parquet partition per (model, corruption, severity). This module orchestrates; each job
has its own module:

    compute.cards         the models and their cards (models.parquet rows; `fill_bases` sets the base)
    compute.worklist      the work list, setting-major, and its shards (`Shard`)
    compute.image_source  where each setting's images come from, and their provenance
    compute.inference     a model over a setting's images, geometry and the written partition
    compute.executors     who computes the partitions (`Executor`: in this process by default)

Partitions already complete in the store are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from compute.cards import ExtractModel, fill_bases, fill_sparsity, measure_footprints
from compute.datasets.base import Dataset, ImageSet
from compute.executors import Executor, LocalExecutor, Work
from compute.image_source import ImageSource
from compute.inference import ExtractSummary, classifier_record
from compute.layers import layer_rows
from compute.models.base import check_contract
from compute.worklist import Shard, work_list
from store import derived, layout, provenance, reader, writer


def check_entries(entries: Sequence[ExtractModel]) -> None:
    """Each model once, meeting the model contract, with an id the store accepts."""
    duplicates = sorted(model_id for model_id, n in Counter(e.model_id for e in entries).items() if n > 1)
    if duplicates:
        raise ValueError(f"model ids {duplicates} appear more than once; each model needs its own id")
    for entry in entries:
        check_contract(entry.model, f"model {entry.model_id}")
        writer.check_model_id(entry.model_id)


def check_classes(entries: Sequence[ExtractModel], data: Dataset) -> None:
    """Every model has exactly one output per class of the dataset: a label past a model's last class has
    no angle, logit or loss, and an output past the dataset's last class is a prediction no class name
    stands for. ValueError naming the model, both counts and the dataset, before anything is written;
    `--model-classes` (Dataset.with_class_names) says which classes the outputs are when they differ."""
    for entry in entries:
        outputs = entry.model.classifier.out_features
        if outputs < data.num_classes:
            missing = ", ".join(data.class_names[outputs:][:3]) + (", ..." if data.num_classes - outputs > 3 else "")
            raise ValueError(f"model {entry.model_id} has {outputs} outputs, but dataset {data.name} has "
                             f"{data.num_classes} classes (no output for {missing}); use a model trained on "
                             "these classes")
        if outputs > data.num_classes:
            raise ValueError(f"model {entry.model_id} has {outputs} outputs, but dataset {data.name} has "
                             f"{data.num_classes} classes, so its predictions could name a class the dataset does "
                             "not have; say which classes its outputs are, in order: --model-classes NAME,NAME,...")


def extract(store: str | Path, entries: Sequence[ExtractModel], test: ImageSet, num_classes: int,
            corruption_names: Sequence[str], severities: Sequence[int], *, device: torch.device,
            batch_size: int = 256, seed: int = 0,
            load_corrupted: Callable[[str, int], np.ndarray] | None = None, progress: bool = True,
            shard: Shard | None = None, executor: Executor | None = None,
            source: ImageSource | None = None) -> ExtractSummary:
    """Write every missing partition of `entries` in this shard (all by default) into the store at `store`.

    Only the partitions: jobs that write a store call `run_extraction`, which also initialises it and
    records provenance, models and the index (benchmarks call this directly). `source` says where the
    images come from (default: generated with `seed`, or `load_corrupted(name, severity)`). Temporary
    files that killed writers left in the store are removed first. `executor` computes the partitions
    (default: this process).
    """
    store = Path(store)
    check_entries(entries)
    summary = ExtractSummary(stale_removed=len(writer.clean_tmp(store)))
    writer.upsert_classifiers(store, {e.model_id: classifier_record(e.model) for e in entries})
    mine = (shard or Shard()).select(work_list([e.model_id for e in entries], corruption_names, severities))
    todo = [part for part in mine if not reader.is_complete(store, *part)]
    summary.skipped = len(mine) - len(todo)
    work = Work(store, {e.model_id: e.model for e in entries},
                source or ImageSource(test, seed, load_corrupted), num_classes, device, batch_size)
    if todo:
        summary.add((executor or LocalExecutor()).run(work, todo, progress))
    return summary


def run_extraction(store: str | Path, entries: Sequence[ExtractModel], data: Dataset, test: ImageSet,
                   corruption_names: Sequence[str], severities: Sequence[int], *, device: torch.device,
                   batch_size: int = 256, seed: int = 0, corrupted_dir: str | None = None,
                   limit: int | None = None, progress: bool = True, shard: Shard | None = None,
                   executor: Executor | None = None, per_class: layout.PerClass | None = None) -> ExtractSummary:
    """The one path into a store: every job that writes one (extract, study, demo, shards, Ray) calls this.

    In order: check the models; create (or reopen) the store for `data`'s test images `test`; record the
    provenance of this shard's settings (refused, before anything is written, when the store holds one
    of them made another way) and of the models' training records (a model whose record changed loses
    its partitions, which are computed again); extract the missing partitions; record the models; build
    the by-sample index once every partition of the work list is complete (the last shard to finish
    does; `summary.index` is None while others are still running). `corrupted_dir` reads corrupted
    images from a CIFAR-10-C-layout directory (first `limit` rows of each severity) instead of generating
    them with `seed`. `per_class` (a new store's rule for which classes' logits a row keeps) defaults to
    the store's own.
    """
    store, shard = Path(store), shard or Shard()
    check_entries(entries)
    check_classes(entries, data)
    source = ImageSource(test, seed, corrupted_dir=corrupted_dir, limit=limit, dataset=data.name)
    everything = work_list([e.model_id for e in entries], corruption_names, severities)
    mine = shard.select(everything)
    described = {provenance.key(*setting): source.provenance(*setting)
                 for setting in dict.fromkeys([(layout.CLEAN, 0), *(part.setting for part in mine)])}
    wanted = {name: entry for name, (entry, _) in described.items()}
    listings = {name: listing for name, (_, listing) in described.items() if listing is not None}
    if (store / layout.MANIFEST).exists():
        provenance.check(store, wanted)  # refused before anything (even the manifest) is written
    writer.init_store(store, dataset=data.name, class_names=data.class_names, images=test.images,
                      labels=test.labels, corruptions=corruption_names, severities=severities,
                      per_class=per_class)
    provenance.record(store, wanted, listings)  # again under the lock: concurrent shards agree
    reset = provenance.record_training(store, {e.model_id: e.run.digest if e.run else None for e in entries})
    summary = extract(store, entries, test, data.num_classes, corruption_names, severities, device=device,
                      batch_size=batch_size, progress=progress, shard=shard, executor=executor, source=source)
    summary.reset_models = reset
    fill_bases(entries, reader.read_manifest(store).get(provenance.TRAINING_KEY, {}))
    fill_sparsity(entries)
    measure_footprints(entries, int(test.images.shape[1]))
    writer.upsert_models(store, [entry.info for entry in entries])
    writer.upsert_layers(store, {entry.model_id: layer_rows(entry.model) for entry in entries})  # ids join models
    if all(reader.is_complete(store, *part) for part in everything):
        derived.build_serving(store, progress=False)  # first: the index and aggregates then read it
        summary.index = derived.build_sample_index(store)
        derived.build_aggregates(store)
    return summary

