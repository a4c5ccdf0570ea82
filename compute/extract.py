"""Extraction: run models over clean and corrupted test images, compute geometry in the same pass,
and write one Parquet partition per (model, corruption, severity).

The work list is every (model, corruption, severity) partition, setting-major: all models under the
clean images, then all under each corruption and severity, so the models that follow each other share
one setting's corrupted images, made once (on the GPU when there is one). `Shard` cuts that list into
contiguous, deterministic parts for schedulers that fan out (Slurm arrays, Ray, several machines);
shards write disjoint partitions of one store. Partitions already complete in the store are skipped, so
an interrupted run resumes where it stopped. Parquet encoding and writing run on a background thread
while the next partition is computed.

Who computes the partitions is an `Executor` (compute/executors.py): in this process by default.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from tqdm.auto import tqdm

from compute import checkpoint, corruptions, datasets, footprint, geometry, models, quantize, runs
from compute import device as devices
from compute.datasets import cifar10c, folders
from compute.datasets.base import Dataset, ImageSet
from compute.models.base import check_contract, weight_counts
from compute.runs import RunRecord
from store import derived, layout, provenance, reader, vocabulary, writer


@dataclass
class ExtractModel:
    """A model to extract, with the row that describes it in models.parquet and the run record it was
    trained from (None for models from elsewhere: the store does not track their training)."""

    model_id: str
    model: nn.Module
    info: dict[str, Any] = field(default_factory=dict)
    run: RunRecord | None = None


def model_row(model_id: str, model: nn.Module, card: Mapping[str, Any], checkpoint_path: str | None,
              loader: Mapping[str, Any]) -> dict:
    """The models.parquet row (the model card) of a model: sparsity and parameter counts measured from the
    weights; arch, method, target_sparsity, seed, hparams and base from `card` (a prunescope checkpoint's
    run record, `checkpoint_card`, or the user's description, compute.cards); `loader` says how it is
    loaded again (compute.cards.ModelSpec.loader; {"kind": "checkpoint"} for ours).

    clean_accuracy is left to `store.writer.upsert_models`, which reads it from the clean partition.
    """
    num_params, num_nonzero = footprint.parameters(model)
    full = card.get("full_model")  # the unpruned architecture, where known: removed channels count as removed
    counts = weight_counts(model)
    return {
        "model_id": model_id,
        "arch": card["arch"],
        "method": card["method"],
        "target_sparsity": float(card["target_sparsity"]),
        "sparsity": (footprint.sparsity(model, full) if full is not None
                     else counts["prunable_zero"] / max(counts["prunable"], 1)),
        "seed": card["seed"],
        "num_params": num_params,
        "num_nonzero": num_nonzero,
        "checkpoint": checkpoint_path,
        "hparams": card.get("hparams") or json.dumps({}),
        "clean_accuracy": None,
        "base": card.get("base"),
        "loader": json.dumps(dict(loader), sort_keys=True),
        "operation": card.get("operation"),
    }


def measure_footprints(entries: Sequence[ExtractModel], image_size: int) -> None:
    """Put each model's footprint (compute.footprint: file bytes, CPU latency at batch 1 and 256) on its
    card, measured now on this machine; file_bytes is null for a model without a file."""
    for entry in entries:
        path = entry.info.get("checkpoint")
        file = path if path and Path(path).is_file() else None
        entry.info.update(footprint.measure(entry.model, file, image_size, repeats=3).to_dict())


CHECKPOINT_LOADER = {"kind": "checkpoint"}


def from_checkpoint(path: str | Path) -> ExtractModel:
    """A prunescope checkpoint to extract; its base is found among the run's models (`fill_bases`)."""
    model, meta = checkpoint.load(path)
    model_id = meta.get("hparams", {}).get("model_id") or Path(path).stem
    record = runs.of_checkpoint(meta)
    card = {**runs.card(meta), "arch": meta["arch"], "base": None,
            "operation": runs.operation(record) if record is not None else None,
            "full_model": models.build(meta["arch"], meta["num_classes"], meta["mean"], meta["std"])}
    return ExtractModel(model_id, model, model_row(model_id, model, card, str(Path(path).resolve()),
                                                   CHECKPOINT_LOADER), runs.of_checkpoint(meta))


def fill_bases(entries: Sequence[ExtractModel], recorded: Mapping[str, str]) -> None:
    """Give each pruned prunescope checkpoint its dense model as base: the model whose run its record
    starts from (RunRecord.base: a digest, matched against this run's records and the store's `recorded`
    model_id -> digest, or a model id), else the dense model of this run with its arch (its seed first).
    Models from elsewhere keep the base their card gives."""
    digests = {**recorded, **{e.model_id: e.run.digest for e in entries if e.run is not None}}
    by_digest = {digest: model_id for model_id, digest in digests.items()}
    dense = [e for e in entries if e.info["method"] == runs.DENSE]
    ours = json.dumps(CHECKPOINT_LOADER, sort_keys=True)
    for entry in entries:
        if entry.info["loader"] != ours or entry.info["base"] is not None or entry.info["method"] == runs.DENSE:
            continue
        named = entry.run.base if entry.run is not None else None
        if named in by_digest or named in digests:
            entry.info["base"] = by_digest.get(named, named)
            continue
        same_arch = sorted((e.info["seed"] != entry.info["seed"], e.model_id) for e in dense
                           if e.info["arch"] == entry.info["arch"])
        entry.info["base"] = same_arch[0][1] if same_arch else None


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


def batches(count: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


@torch.no_grad()
def corrupted_images(images: torch.Tensor, name: str, severity: int, seed: int, device: torch.device,
                     batch_size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) images under one corruption, made and kept on `device` (same bytes as `corrupt`)."""
    images = images.to(device)
    if name == layout.CLEAN:
        return images
    out = torch.empty_like(images)
    for part in batches(len(images), batch_size):
        x = devices.to_input(images[part], device)
        ids = torch.arange(part.start, part.stop, device=device)
        y = corruptions.corrupt_tensor(x, name, severity, seed=seed, sample_ids=ids)
        out[part] = corruptions.to_uint8(y).permute(0, 2, 3, 1)
    return out


@torch.no_grad()
def geometry_table(model: nn.Module, images: np.ndarray | torch.Tensor, labels: np.ndarray,
                   device: torch.device, batch_size: int, per_class: layout.PerClass | None = None,
                   ) -> tuple[pa.Table, dict[str, Any]]:
    """Forward every image once through forward_features; geometry from the features and the classifier.

    Returns the partition as a format-2 table (the stored scalars, and the logits of the classes
    `per_class` keeps) and its completion summary, taken from the full geometry before it is reduced.
    Results stay on the device until the whole partition is done, so the GPU never waits for a copy.
    """
    per_class = per_class or layout.PerClass()
    device = quantize.device_for(model, device)  # an int8 model runs on CPU, its input copied there
    weight = model.classifier.weight.float()
    bias = None if model.classifier.bias is None else model.classifier.bias.float()
    label_tensor = torch.from_numpy(labels.astype(np.int64)).to(device)
    features = []
    for part in batches(len(images), batch_size):
        x = devices.to_input(images[part], device)
        with devices.autocast(device):
            features.append(model.forward_features(x).float())
    # One geometry pass per partition, not per batch: a few large ops instead of many small ones.
    g = geometry.compute(torch.cat(features), weight, bias, label_tensor)
    classes, kept = geometry.stored_classes(g.logits, g.label, per_class.all_up_to, per_class.top_k)
    logits = g.logits.gather(1, classes)
    columns = {name: getattr(g, name).cpu().numpy() for name in geometry.SCALAR_FIELDS}
    table = writer.prediction_table(columns, classes.cpu().numpy(), logits.cpu().numpy(), kept.cpu().numpy())
    return table, writer.partition_summary(columns)


def classifier_record(model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(|W_c|, b_c) of the model's classifier, for the store's classifiers.parquet."""
    norms, biases = geometry.classifier_norms(model.classifier.weight,
                                              getattr(model.classifier, "bias", None))
    return norms.cpu().numpy(), biases.cpu().numpy()


@dataclass
class ExtractSummary:
    """What a run did. Rows with NaN/inf are kept (flagged finite = false) and counted per model."""

    written: int = 0
    skipped: int = 0
    rows: int = 0
    bytes: int = 0
    non_finite: int = 0
    non_finite_by_model: Counter[str] = field(default_factory=Counter)
    stale_removed: int = 0
    reset_models: list[str] = field(default_factory=list)  # their training record changed: extracted again
    index: Path | None = None  # the by-sample index, once every partition of the work list is complete

    def add(self, other: ExtractSummary) -> None:
        """Fold in the summary of another part of the same run (an executor's task)."""
        for name in ("written", "skipped", "rows", "bytes", "non_finite", "stale_removed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.non_finite_by_model.update(other.non_finite_by_model)


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """A uint8 image array as a tensor on `device` (arrays from a shared object store are read-only)."""
    return torch.from_numpy(images if images.flags.writeable else images.copy()).to(device)


@dataclass(frozen=True)
class ImageSource:
    """Where a setting's images come from: generated with compute.corruptions from the test images with
    `seed`, or read from published files: `corrupted_dir` in the layout of dataset `dataset` (CIFAR-C
    .npy files, or Tiny-ImageNet-C / ImageNet-C / image-folder trees; copies of the test set, first `limit`
    rows), or any `load_corrupted(name, severity)` (benchmarks; it records no provenance)."""

    test: ImageSet
    seed: int = 0
    load_corrupted: Callable[[str, int], np.ndarray] | None = None
    corrupted_dir: str | None = None
    limit: int | None = None
    dataset: str = "cifar10"

    def read_corrupted(self, name: str, severity: int) -> np.ndarray | None:
        """The published images of a setting, or None when this source generates them."""
        if self.corrupted_dir is not None:
            return datasets.load_corrupted(self.dataset, self.corrupted_dir, name, severity, self.test).images
        if self.load_corrupted is not None:
            return self.load_corrupted(name, severity)
        return None

    def provenance(self, name: str, severity: int) -> tuple[dict[str, Any], provenance.Listing | None]:
        """The store's record of how this setting's images are made (store/provenance.py), and for a
        folder tree the listing of its files (hashed as bytes: nothing is decoded here)."""
        if name == layout.CLEAN:
            return provenance.stored(self.test.images), None
        if self.corrupted_dir is None:
            return provenance.generated(self.seed, corruptions.IMPLEMENTATION), None
        if self.dataset not in datasets.NPY_FOLDERS:  # a folder tree: one file per image
            copy = datasets.load_corrupted(self.dataset, self.corrupted_dir, name, severity, self.test)
            record, listing = provenance.from_tree(copy.paths, copy.keys, self.test.size,
                                                   folders.rule_spec(self.test.decode))
            return ({**record, provenance.PAIRED: False} if not copy.paired else record), listing
        images = self.read_corrupted(name, severity)
        path = cifar10c.find_directory(self.corrupted_dir, datasets.NPY_FOLDERS[self.dataset]) / f"{name}.npy"
        per_severity = len(np.load(path, mmap_mode="r")) // len(vocabulary.SEVERITIES)
        start = (severity - 1) * per_severity
        return provenance.from_files(path, (start, start + len(images)), images), None

    def on(self, device: torch.device, batch_size: int) -> Callable[[str, int], torch.Tensor]:
        """`images(name, severity)` on `device`; the clean images cross to the device once."""
        clean = to_device(self.test.images, device)

        def images(name: str, severity: int) -> torch.Tensor:
            read = None if name == layout.CLEAN else self.read_corrupted(name, severity)
            if read is not None:
                return to_device(read, device)
            return corrupted_images(clean, name, severity, self.seed, device, batch_size)
        return images


@dataclass
class Work:
    """Everything an executor needs to compute partitions into one store."""

    store: Path
    models: Mapping[str, nn.Module]
    source: ImageSource
    num_classes: int
    device: torch.device
    batch_size: int = 256


class Executor(Protocol):
    """Computes and writes the partitions `todo` (complete ones already left out) of `work`."""

    def run(self, work: Work, todo: Sequence[Partition], progress: bool) -> ExtractSummary: ...


def compute_partitions(store: Path, models_by_id: Mapping[str, nn.Module], todo: Sequence[Partition],
                       images: Callable[[str, int], torch.Tensor], labels: np.ndarray, num_classes: int,
                       device: torch.device, batch_size: int, progress: bool = True) -> ExtractSummary:
    """Compute and write `todo` in order; each setting's images are made once for its run of models.

    The Parquet file of one partition is written on a background thread while the next is computed;
    waiting for the previous write before handing over the next bounds memory and surfaces a failed
    write at once.
    """
    summary = ExtractSummary()
    per_class = layout.PerClass.of(reader.read_manifest(store))
    prepared = {model_id: devices.prepare_model(models_by_id[model_id],
                                                quantize.device_for(models_by_id[model_id], device)).eval()
                for model_id in dict.fromkeys(p.model_id for p in todo)}
    previous: Future | None = None
    with ThreadPoolExecutor(max_workers=1) as pool, \
            tqdm(total=len(todo), desc="extract", unit="part", disable=not progress) as bar:
        for setting, group in itertools.groupby(todo, key=lambda p: p.setting):
            setting_images = images(*setting)
            for part in group:
                bar.set_postfix(model=part.model_id, setting=f"{part.corruption}/{part.severity}")
                table, part_summary = geometry_table(prepared[part.model_id], setting_images, labels, device,
                                                     batch_size, per_class)
                bad = table.num_rows - int(np.sum(table.column("finite").to_numpy()))
                summary.rows += table.num_rows
                summary.non_finite += bad
                if bad:
                    summary.non_finite_by_model[part.model_id] += bad
                if previous is not None:
                    summary.bytes += previous.result()
                previous = pool.submit(writer.write_partition, store, *part, table, part_summary)
                summary.written += 1
                bar.update(1)
        if previous is not None:
            summary.bytes += previous.result()
    return summary


class LocalExecutor:
    """Computes every partition in this process, on `work.device`."""

    def run(self, work: Work, todo: Sequence[Partition], progress: bool) -> ExtractSummary:
        return compute_partitions(work.store, work.models, todo, work.source.on(work.device, work.batch_size),
                                  work.source.test.labels, work.num_classes, work.device, work.batch_size,
                                  progress)


def check_entries(entries: Sequence[ExtractModel]) -> None:
    """Each model once, meeting the model contract, with an id the store accepts."""
    duplicates = sorted(model_id for model_id, n in Counter(e.model_id for e in entries).items() if n > 1)
    if duplicates:
        raise ValueError(f"model ids {duplicates} appear more than once; each model needs its own id")
    for entry in entries:
        check_contract(entry.model, f"model {entry.model_id}")
        writer.check_model_id(entry.model_id)


def check_classes(entries: Sequence[ExtractModel], data: Dataset) -> None:
    """Every model has an output per class of the dataset (a label past a model's last class has no angle,
    logit or loss); ValueError naming the model, both counts and the dataset, before anything is written."""
    for entry in entries:
        outputs = entry.model.classifier.out_features
        if outputs < data.num_classes:
            missing = ", ".join(data.class_names[outputs:][:3]) + (", ..." if data.num_classes - outputs > 3 else "")
            raise ValueError(f"model {entry.model_id} has {outputs} outputs, but dataset {data.name} has "
                             f"{data.num_classes} classes (no output for {missing}); use a model trained on "
                             "these classes")


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
    measure_footprints(entries, int(test.images.shape[1]))
    writer.upsert_models(store, [entry.info for entry in entries])
    if all(reader.is_complete(store, *part) for part in everything):
        summary.index = derived.build_sample_index(store)
        derived.build_aggregates(store)
    return summary

