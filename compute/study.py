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
    epochs = 3
    lr = 0.01
    [methods.lrr]                  # one table per method: sparsities, then TrainConfig fields or options
    sparsities = [0.5, 0.9]
    rounds = 2

Running is resumable: a checkpoint that exists is not trained again, and extraction skips complete
partitions. Each checkpoint is identified by the digest of its typed training record (`TrainingRecord`:
arch, dataset, method, sparsity, seed, training schedule, method options, rewind step, and the record of
the dense model it starts from): `<out>/checkpoints/<model_id>.<digest>.pt`, model ids
`<arch>-<method>-<percent>-s<seed>`. Editing the study file retrains exactly the models whose record
changed (and those built on a changed dense model), keeps the rest, and prints which; a superseded
checkpoint moves to `<out>/checkpoints/superseded/`, and the store extracts the new one again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from compute import byo, checkpoint, corruptions, datasets, models, pruning
from compute.datasets.base import Dataset
from compute.extract import ExtractModel, ExtractSummary, model_row, run_extraction
from compute.pruning.base import epoch_steps, train_dense
from compute.train import TrainConfig, accuracy, channel_stats

TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - {"seed"}
CORRUPTION_SEED = 0  # as `python -m compute extract`, so stores built either way agree
STUDY_KEYS = frozenset({"arch", "dataset", "data_dir", "download", "seeds", "severities", "corruptions",
                        "limit", "rewind_step", "dense", "finetune", "methods", "normalize"})


class StudyError(ValueError):
    """A study file or value that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class TrainingRecord:
    """Everything that decides a checkpoint's weights. Its digest names the checkpoint, so a checkpoint
    is reused only for exactly this record. `parent` is the digest of the dense model a pruned model
    starts from or rewinds to (None for methods that start from a fresh initialisation)."""

    arch: str
    dataset: str
    method: str
    sparsity: float
    seed: int
    train: Mapping[str, Any]  # TrainConfig fields: the schedule
    options: Mapping[str, Any] = field(default_factory=dict)
    rewind_step: int | None = None
    parent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "train": dict(self.train), "options": dict(self.options)}

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the record, first 12 hex digits."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def record_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`train.epochs 1 -> 2`: each field that differs between two records (as dicts)."""
    changes = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes.extend(record_changes(a, b, f"{prefix}{name}."))
        elif a != b:
            changes.append(f"{prefix}{name} {a!r} -> {b!r}")
    return changes


@dataclass(frozen=True)
class MethodPlan:
    """One method of a study: the sparsities to prune to, training overrides and method options."""

    method: str
    sparsities: tuple[float, ...]
    train: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


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
    finetune: Mapping[str, Any] = field(default_factory=dict)
    rewind_step: int | None = None
    corruptions: tuple[str, ...] = corruptions.NAMES
    severities: tuple[int, ...] = (1, 3, 5)
    limit: int | None = None
    normalize: str | None = None  # "imagenet" | "cifar10" | "cifar100" | "MEAN,STD"; default: training-set stats

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

    def model_id(self, method: str, sparsity: float, seed: int) -> str:
        return model_id(self.arch, method, sparsity, seed)

    def train_config(self, method: str, plan: MethodPlan | None, seed: int) -> TrainConfig:
        """Dense settings for the dense model and from-init methods, fine-tune settings for from-dense ones."""
        base = self.dense if method == "dense" or not pruning.get(method).from_dense else self.finetune
        return TrainConfig(**{**base, **(plan.train if plan else {}), "seed": seed})

    def dense_record(self, seed: int, rewind_step: int) -> TrainingRecord:
        return TrainingRecord(self.arch, self.dataset, "dense", 0.0, seed,
                              self.train_config("dense", None, seed).to_dict(), rewind_step=rewind_step)

    def pruned_record(self, plan: MethodPlan, sparsity: float, seed: int, rewind_step: int) -> TrainingRecord:
        method = pruning.get(plan.method)
        uses_dense = method.from_dense or method.needs_rewind
        return TrainingRecord(self.arch, self.dataset, plan.method, float(sparsity), seed,
                              self.train_config(plan.method, plan, seed).to_dict(), dict(plan.options),
                              rewind_step=rewind_step if method.needs_rewind else None,
                              parent=self.dense_record(seed, rewind_step).digest if uses_dense else None)

    def jobs(self) -> list[tuple[MethodPlan, float, int]]:
        """(method plan, sparsity, seed) of every pruned model, in the order they are trained."""
        return [(plan, sparsity, seed) for seed in self.seeds for plan in self.methods for sparsity in plan.sparsities]


def model_id(arch: str, method: str, sparsity: float, seed: int) -> str:
    """`small_cnn-ft-90-s0` (97.5% sparse: `-97.5-`); dense models are `small_cnn-dense-s0`."""
    if method == "dense":
        return f"{arch}-dense-s{seed}"
    percent = round(sparsity * 100, 2)
    return f"{arch}-{method}-{int(percent) if percent == int(percent) else percent}-s{seed}"


def _train_table(table: Any, source: str) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise StudyError(f"{source} must be a table of TrainConfig fields")
    unknown = sorted(set(table) - TRAIN_FIELDS)
    if unknown:
        raise StudyError(f"{source}: unknown training keys {unknown}; known: {sorted(TRAIN_FIELDS)}")
    return dict(table)


def _method_plan(name: str, table: Any, source: str) -> MethodPlan:
    where = f"{source} [methods.{name}]"
    if name not in pruning.METHODS:
        raise StudyError(f"{where}: unknown method; known: {', '.join(pruning.NAMES)}")
    if not isinstance(table, Mapping) or not table.get("sparsities"):
        raise StudyError(f"{where}: needs sparsities = [...] (fractions of weights removed, e.g. [0.5, 0.9])")
    sparsities = tuple(float(s) for s in table["sparsities"])
    if any(not 0.0 < s < 1.0 for s in sparsities):
        raise StudyError(f"{where}: sparsities must be in (0, 1), got {list(sparsities)}")
    rest = {k: v for k, v in table.items() if k != "sparsities"}
    train = {k: v for k, v in rest.items() if k in TRAIN_FIELDS}
    options = {k: v for k, v in rest.items() if k not in TRAIN_FIELDS}
    accepted = pruning.get(name).options
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise StudyError(f"{where}: unknown keys {unknown}; training keys: {sorted(TRAIN_FIELDS)}, "
                         f"{name} options: {sorted(accepted)}")
    return MethodPlan(name, sparsities, train, options)


def _checkpoint_meta(study: Study, data: Dataset, mean: list[float], std: list[float]) -> dict[str, Any]:
    return {"arch": study.arch, "num_classes": data.num_classes, "mean": mean, "std": std, "dataset": data.name}


def rewind_path(dense_path: Path) -> Path:
    """Where the dense run's rewind iterate lives: beside the checkpoints, never mistaken for a model."""
    return dense_path.parent / "rewind" / dense_path.name


def rewind_step_of(study: Study, data: Dataset) -> int:
    """The study's rewind_step, or one epoch of dense training when it gives none."""
    if study.rewind_step is not None:
        return int(study.rewind_step)
    return epoch_steps(data.train, study.train_config("dense", None, 0))


def checkpoint_path(ckpt_dir: Path, model_id: str, record: TrainingRecord) -> Path:
    """`<ckpt_dir>/<model_id>.<digest>.pt`: a checkpoint is found by its training record, not its name."""
    return ckpt_dir / f"{model_id}.{record.digest}.pt"


def superseded(path: Path) -> list[Path]:
    """Checkpoints of the same model id trained from another record (or named before records existed)."""
    model_id = path.name.split(".", 1)[0]
    return sorted(p for p in path.parent.glob(f"{model_id}.*pt")
                  if p != path and p.name.split(".")[0] == model_id and p.suffix == ".pt")


def why_train(path: Path, record: TrainingRecord) -> str:
    """Why the checkpoint at `path` must be trained: new, or which fields of its record changed."""
    for old in superseded(path):
        try:
            previous = checkpoint.read(old)["hparams"].get("training_record")
        except ValueError:
            previous = None
        if previous is None:
            return f"replaces {old.name} (trained before checkpoints carried their training record)"
        changes = record_changes(previous, record.to_dict())
        return "training record changed: " + ", ".join(changes or ["digest"])
    return "new"


def _retire(path: Path) -> None:
    """Move the checkpoints `path` supersedes out of the way (kept, never mistaken for current ones)."""
    for old in superseded(path):
        target = old.parent / "superseded" / old.name
        target.parent.mkdir(parents=True, exist_ok=True)
        old.replace(target)


def train_models(study: Study, out: str | Path, device: torch.device, data: Dataset | None = None,
                 say: Callable[[str], None] = print) -> list[Path]:
    """Train the dense models and the zoo into `<out>/checkpoints`, reusing checkpoints whose training
    record is unchanged; `say` gets one line naming what is kept and what is trained, and why."""
    data = data or datasets.load(study.dataset, study.data_dir, study.download)
    mean, std = byo.parse_normalize(study.normalize) if study.normalize else channel_stats(data.train.images)
    meta = _checkpoint_meta(study, data, mean, std)
    ckpt_dir = Path(out) / "checkpoints"
    step = rewind_step_of(study, data)
    dense_paths = {seed: checkpoint_path(ckpt_dir, study.model_id("dense", 0.0, seed), study.dense_record(seed, step))
                   for seed in study.seeds}
    pruned = [(plan, sparsity, seed, study.pruned_record(plan, sparsity, seed, step)) for plan, sparsity, seed
              in study.jobs()]
    pruned_paths = [checkpoint_path(ckpt_dir, study.model_id(plan.method, sparsity, seed), record)
                    for plan, sparsity, seed, record in pruned]
    records = [*(study.dense_record(seed, step) for seed in study.seeds), *(job[3] for job in pruned)]
    paths = [*dense_paths.values(), *pruned_paths]
    todo = {path: why_train(path, record) for path, record in zip(paths, records, strict=True)
            if not path.exists()}
    kept = [path.name.split(".")[0] for path in paths if path not in todo]
    say(f"study: {len(kept)} checkpoints kept" + (f" ({', '.join(kept)})" if kept else "")
        + f", {len(todo)} to train" + "".join(f"\n  {path.name.split('.')[0]}: {why}" for path, why in todo.items()))
    with tqdm(total=len(paths), desc="study", unit="model") as bar:
        for seed, dense_path in dense_paths.items():
            if dense_path in todo:
                _train_dense(study, data, meta, dense_path, seed, step, device)
                _retire(dense_path)
            bar.update(1)
        for (plan, sparsity, seed, record), path in zip(pruned, pruned_paths, strict=True):
            if path in todo:
                bar.set_postfix(model=path.stem)
                _report(_train_pruned(study, plan, sparsity, seed, record, data, meta, dense_paths[seed], path,
                                      step, device))
                _retire(path)
            bar.update(1)
    return paths


def _report(hparams: dict[str, Any]) -> None:
    tqdm.write(f"{hparams['model_id']}: test accuracy {hparams['test_accuracy']:.4f}, {hparams['seconds']:.0f} s")


def _train_dense(study: Study, data: Dataset, meta: dict[str, Any], path: Path, seed: int, step: int,
                 device: torch.device) -> None:
    """Train one dense model; its rewind iterate is saved first, so a dense checkpoint implies one."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    dense = models.build(study.arch, data.num_classes, meta["mean"], meta["std"])
    config = study.train_config("dense", None, seed)
    rewind = train_dense(dense, data.train, config, device, rewind_step=step,
                                 description=f"dense s{seed}")
    snapshot = models.build(study.arch, data.num_classes, meta["mean"], meta["std"])
    snapshot.load_state_dict(rewind)
    record = study.dense_record(seed, step)
    model_id = path.name.split(".")[0]
    hparams = {"model_id": model_id, "method": "dense", "target_sparsity": 0.0, "seed": seed,
               "train": config.to_dict(), "rewind_step": step, "record": record.digest,
               "training_record": record.to_dict()}
    checkpoint.save(rewind_path(path), snapshot, hparams={**hparams, "model_id": f"{model_id}-rewind"}, **meta)
    hparams.update(seconds=time.perf_counter() - start, test_accuracy=accuracy(dense, data.test, device))
    checkpoint.save(path, dense, hparams=hparams, **meta)
    _report(hparams)


def _train_pruned(study: Study, plan: MethodPlan, sparsity: float, seed: int, record: TrainingRecord,
                  data: Dataset, meta: dict[str, Any], dense_path: Path, path: Path, step: int,
                  device: torch.device) -> dict[str, Any]:
    start = time.perf_counter()
    method = pruning.get(plan.method)
    torch.manual_seed(seed)
    if method.from_dense:
        model, _ = checkpoint.load(dense_path)
    else:
        model = models.build(study.arch, data.num_classes, meta["mean"], meta["std"])
    options = dict(plan.options)
    if method.needs_rewind:
        options["rewind_state"] = checkpoint.load(rewind_path(dense_path))[0].state_dict()
    config = study.train_config(plan.method, plan, seed)
    pruned = method.prune(model, data.train, sparsity, config, device, **options)
    hparams = {"model_id": path.name.split(".")[0], "method": plan.method, "target_sparsity": sparsity,
               "seed": seed, "train": config.to_dict(), "options": dict(plan.options),
               "record": record.digest, "training_record": record.to_dict(),
               "parent": dense_path.name.split(".")[0] if method.from_dense else None,
               "rewind_step": step if "rewind_state" in options else None,
               "seconds": time.perf_counter() - start, "test_accuracy": accuracy(pruned, data.test, device)}
    checkpoint.save(path, pruned, hparams=hparams, **meta)
    return hparams


def extract_models(study: Study, out: str | Path, paths: list[Path], device: torch.device,
                   data: Dataset | None = None) -> ExtractSummary:
    """Extract every checkpoint in `paths` on clean and corrupted test images into the store at `out`."""
    data = data or datasets.load(study.dataset, study.data_dir, study.download)
    entries = []
    for path in paths:
        model, meta = checkpoint.load(path)
        model_id = meta["hparams"]["model_id"]
        entries.append(ExtractModel(model_id, model, model_row(model_id, model, meta, str(path.resolve()))))
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
