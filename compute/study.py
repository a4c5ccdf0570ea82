"""A pruning study: one dense model per seed and the pruning zoo around it, then extraction into a store.

A study is a TOML file (see docs/pruning.md and studies/):

    arch = "small_cnn"             # compute.models registry name
    dataset = "digits"             # compute.datasets registry name; data_dir / download for files
    seeds = [0]
    severities = [1, 3, 5]         # corruptions = [...] picks some (default: all 19); limit = N test images
    rewind_step = 20               # ltr's rewind iterate (default: one epoch of dense training)

    [dense]                        # TrainConfig fields: the dense model, and methods that start from init
    epochs = 12
    [finetune]                     # TrainConfig fields: methods that start from the dense model
    epochs = 3                     # (over compute.runs.FINETUNE: 5 epochs at lr 0.01)
    lr = 0.01
    [methods.lrr]                  # one table per method: sparsities, then TrainConfig fields or options
    sparsities = [0.5, 0.9]
    rounds = 2
    [methods.nm]                   # N:M sparsity: the pattern fixes the sparsity
    pattern = "2:4"
    [[model]]                      # a model derived from another of the study, for every seed:
    base = "channel-50"            # "dense" or "<method>-<percent>" as in the model ids
    op = "quantize"                # int8 (method = "int8"), calibrated on 512 training images (calibration)

Running is resumable: a checkpoint that exists is not trained again, and extraction skips complete
partitions. Each checkpoint is identified by the digest of its run record (`compute.runs.RunRecord`:
arch, dataset, method, sparsity, seed, training schedule, method options, rewind step, and the digest of
the dense run it starts from): `<out>/checkpoints/<model_id>.<digest>.pt`, model ids
`<arch>-<method>-<percent>-s<seed>`. Editing the study file retrains exactly the models whose record
changed (and those built on a changed dense model), keeps the rest, and prints which; a superseded
checkpoint moves to `<out>/checkpoints/superseded/`, and the store extracts the new one again.
`compute train` and `compute prune` train their one model through the same `train_dense`/`train_pruned`,
`compute quantize` through `quantize_model`; a derived model is `<arch>-<base>-<method>-s<seed>`
(`small_cnn-channel-50-int8-s0`) and its record names its base's digest, so it follows its base.
"""

from __future__ import annotations

import copy
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from compute import byo, checkpoint, corruptions, datasets, footprint, models, pruning, quantize, runs
from compute.cards import from_checkpoint
from compute.datasets.base import Dataset
from compute.extract import run_extraction
from compute.inference import ExtractSummary
from compute.pruning import base as pruning_base
from compute.runs import SCHEDULE_FIELDS, RunRecord
from compute.train import accuracy, channel_stats

CORRUPTION_SEED = 0  # as `python -m compute extract`, so stores built either way agree
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
    calibration: int = 512  # training images that calibrate int8 activation ranges


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
        bases = {"dense", *(model_tag(plan.method, s) for plan in self.methods for s in plan.sparsities)}
        for index, plan in enumerate(self.derived):
            if plan.base not in bases:
                raise StudyError(f"{source} [[model]] {index + 1}: base {plan.base!r} is no model of the study; "
                                 f"known: {', '.join(sorted(bases))}")

    def model_id(self, method: str, sparsity: float, seed: int) -> str:
        return model_id(self.arch, method, sparsity, seed)

    def derived_ids(self, plan: DerivedPlan, seed: int) -> tuple[str, str]:
        """(the base's model id, the derived model's id) for `seed`."""
        base = f"{self.arch}-{plan.base}-s{seed}"
        return base, derived_id(base, plan.method)

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


def model_id(arch: str, method: str, sparsity: float, seed: int) -> str:
    """`small_cnn-ft-90-s0` (97.5% sparse: `-97.5-`); dense models are `small_cnn-dense-s0`."""
    return f"{arch}-{model_tag(method, sparsity)}-s{seed}"


def model_tag(method: str, sparsity: float) -> str:
    """`ft-90`, `ft-97.5` or `dense`: a model id without its arch and seed (what `[[model]] base` names)."""
    if method == "dense":
        return "dense"
    percent = round(sparsity * 100, 2)
    return f"{method}-{int(percent) if percent == int(percent) else percent}"


def derived_id(base_id: str, method: str) -> str:
    """`small_cnn-channel-50-int8-s0` from `small_cnn-channel-50-s0`: the operation before the seed (ids
    without a seed get it at the end)."""
    stem, dash, seed = base_id.rpartition("-s")
    if dash and seed.isdigit():
        return f"{stem}-{method}-s{seed}"
    return f"{base_id}-{method}"


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
    calibration = table.get("calibration", 512)
    if not isinstance(calibration, int) or isinstance(calibration, bool) or calibration < 1:
        raise StudyError(f"{where}: calibration must be a number of training images >= 1, got {calibration!r}")
    return DerivedPlan(str(table["base"]), op, method, calibration)


def _train_table(table: Any, source: str) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise StudyError(f"{source} must be a table of TrainConfig fields")
    unknown = sorted(set(table) - SCHEDULE_FIELDS)
    if unknown:
        raise StudyError(f"{source}: unknown training keys {unknown}; known: {sorted(SCHEDULE_FIELDS)}")
    return dict(table)


def _method_plan(name: str, table: Any, source: str) -> MethodPlan:
    where = f"{source} [methods.{name}]"
    if name not in pruning.METHODS:
        raise StudyError(f"{where}: unknown method; known: {', '.join(pruning.NAMES)}")
    method = pruning.get(name)
    if not isinstance(table, Mapping) or not (table.get("sparsities") or method.implied_sparsity):
        raise StudyError(f"{where}: needs sparsities = [...] (fractions of weights removed, e.g. [0.5, 0.9])")
    rest = {k: v for k, v in table.items() if k != "sparsities"}
    train = {k: v for k, v in rest.items() if k in SCHEDULE_FIELDS}
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


def rewind_path(dense_path: Path) -> Path:
    """Where the dense run's rewind iterate lives: beside the checkpoints, never mistaken for a model."""
    return dense_path.parent / "rewind" / dense_path.name


def rewind_step_of(study: Study, data: Dataset) -> int:
    """The study's rewind_step, or one epoch of dense training when it gives none."""
    if study.rewind_step is not None:
        return int(study.rewind_step)
    return pruning_base.epoch_steps(data.train, study.dense_record(0, 0).config)


def checkpoint_path(ckpt_dir: Path, model_id: str, record: RunRecord) -> Path:
    """`<ckpt_dir>/<model_id>.<digest>.pt`: a checkpoint is found by its training record, not its name."""
    return ckpt_dir / f"{model_id}.{record.digest}.pt"


def superseded(path: Path) -> list[Path]:
    """Checkpoints of the same model id trained from another record (or named before records existed)."""
    model_id = path.name.split(".", 1)[0]
    return sorted(p for p in path.parent.glob(f"{model_id}.*pt")
                  if p != path and p.name.split(".")[0] == model_id and p.suffix == ".pt")


def why_train(path: Path, record: RunRecord) -> str:
    """Why the checkpoint at `path` must be trained: new, or which fields of its record changed."""
    for old in superseded(path):
        try:
            previous = runs.of_checkpoint(checkpoint.read(old))
        except ValueError:
            previous = None
        if previous is None:
            return f"replaces {old.name} (trained before checkpoints carried their run record)"
        return "training record changed: " + ", ".join(record.changes(previous.to_dict()) or ["digest"])
    return "new"


def _retire(path: Path) -> None:
    """Move the checkpoints `path` supersedes out of the way (kept, never mistaken for current ones)."""
    for old in superseded(path):
        target = old.parent / "superseded" / old.name
        target.parent.mkdir(parents=True, exist_ok=True)
        old.replace(target)


Normalisation = tuple[list[float], list[float]]  # per-channel mean and std the model divides by


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
                _retire(path)
            bar.update(1)
        for (seed, model_id, record), path in zip(pruned, pruned_paths, strict=True):
            if path in todo:
                bar.set_postfix(model=model_id)
                start, rewind = _dense_start(record, dense_paths[seed])
                _report(model_id, train_pruned(record, model_id, path, data, stats, device, start, rewind))
                _retire(path)
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
                _retire(path)
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
                    hparams=runs.checkpoint_hparams(model_id, record, results, [record.base, *runs.lineage(meta)]),
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
