"""Model cards: what a model is and how it is loaded again (store.layout.MODEL_SCHEMA, one models.parquet row).

A prunescope checkpoint's card comes from its run record (`from_checkpoint`); its base, the model it was
pruned from, is set by `fill_bases`, the one place extraction sets it. A model from elsewhere is a
`ModelSpec` as the user describes it, by `extract` flags (`--model` / `--robustbench` with `--method
--sparsity --model-seed --base --arch`) or by one table of a models file (`extract --models FILE.toml`,
the same keys; the table's name is the model id):

    [resnet10t-dense]
    model = "my_timm:resnet10t"          # package.module:function (or robustbench = "NAME")
    weights = "runs/dense.pt"
    normalize = "cifar10"
    method = "dense"
    seed = 0

    [resnet10t-mag70]
    model = "my_timm:resnet10t"
    weights = "runs/mag70.pt"
    normalize = "cifar10"
    method = "magnitude"
    sparsity = 0.7
    seed = 0
    base = "resnet10t-dense"

Its card (`ModelSpec.card`) is the row's description: arch as the user names it (default: the function's
or RobustBench name, never a wrapper class), method (default "external"), target sparsity, seed (null
when not given: the model forms no replicate group), base, and the `loader` JSON that
compute.loading.load_model reads back (the dashboard's attribution loads models with it). `model_row`
makes the row of either kind, with sparsity and parameter counts measured from the weights.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from compute import byo, checkpoint, footprint, loading, models, runs
from compute.models.base import weight_counts
from compute.runs import RunRecord
from store import bases
from store.vocabulary import NAME, UNPRUNED, is_model_id

EXTERNAL = "external"  # the method of a model nobody labelled
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("corruptions", "Linf", "L2")
MAX_FILE_BYTES = 4 << 20  # a models file of thousands of models is well under this
SHOWN_CHARS = 80  # of a value in a message
# A models file's keys: the fields of ModelSpec but its id (the table's name), as the flags spell them.
FILE_KEYS = {"model": "function", "weights": "weights", "normalize": "normalize", "robustbench": "robustbench",
             "threat_model": "threat_model", "arch": "arch", "method": "method", "sparsity": "sparsity",
             "seed": "seed", "base": "base", "structure": "structure"}


@dataclass(frozen=True)
class ModelSpec:
    """One model from elsewhere: how to load it (`function` + `weights` + `normalize`, or `robustbench` +
    `threat_model`) and its card (arch, method, sparsity, seed, base)."""

    model_id: str
    function: str | None = None
    weights: str | None = None
    normalize: str | None = None
    robustbench: str | None = None
    threat_model: str = "corruptions"
    arch: str | None = None
    method: str = EXTERNAL
    sparsity: float = 0.0
    seed: int | None = None
    base: str | None = None
    structure: str | None = None  # "from-weights": the weights are a channel-pruned or int8 copy (compute.byo)

    def problems(self) -> list[tuple[str, str]]:
        """(key, what is wrong) for each bad value; empty when the spec can be loaded."""
        found = []
        if not is_model_id(self.model_id):  # the one pattern the store opens with (store.vocabulary)
            found.append(("id", f"{shown(self.model_id)} is not a model id (letters, digits, '.', '-' and single "
                                "'_', at most 128)"))
        if (self.function is None) == (self.robustbench is None):
            found.append(("model", "give exactly one of model = 'package.module:function' and robustbench = 'NAME'"))
        if self.function is not None:
            module, sep, attribute = self.function.partition(":")
            if not (sep and module and attribute):
                found.append(("model", f"must look like 'package.module:function', got {shown(self.function)}"))
        if self.robustbench is not None and NAME.fullmatch(self.robustbench) is None:  # a file name to RobustBench
            found.append(("robustbench", f"must be a RobustBench model name (letters, digits, '.', '-', '_'), got "
                                         f"{shown(self.robustbench)}"))
        if self.robustbench is not None and (self.weights or self.normalize):
            found.append(("weights" if self.weights else "normalize",
                          "applies to model = 'module:function'; RobustBench models carry their own"))
        if self.threat_model not in THREAT_MODELS:
            found.append(("threat_model", f"must be one of {', '.join(THREAT_MODELS)}, got {shown(self.threat_model)}"))
        if self.normalize is not None:
            try:
                byo.parse_normalize(self.normalize)
            except ValueError as error:
                found.append(("normalize", str(error).replace("--normalize ", "").replace(repr(self.normalize),
                                                                                          shown(self.normalize))))
        if not 0.0 <= self.sparsity < 1.0:
            found.append(("sparsity", f"must be a fraction in [0, 1), got {shown(self.sparsity)}"))
        if self.seed is not None and self.seed < 0:
            found.append(("seed", f"must be a non-negative integer, got {shown(self.seed)}"))
        if self.structure is not None and self.structure not in byo.STRUCTURES:
            found.append(("structure", f"must be {' or '.join(map(repr, byo.STRUCTURES))}, got {shown(self.structure)}"))
        elif self.structure is not None and (self.function is None or self.weights is None):
            found.append(("structure", "rebuilds model = 'module:function' from its weights: give both"))
        if self.base == self.model_id:
            found.append(("base", f"a model cannot be its own base ({shown(self.base)})"))
        return found

    def loader(self, dataset: str, model_dir: str | None = None) -> dict[str, Any]:
        """How the model is loaded again (models.parquet `loader`); the weights go to the `checkpoint` column."""
        if self.robustbench is not None:
            return {"kind": loading.ROBUSTBENCH, "name": self.robustbench, "dataset": dataset,
                    "threat_model": self.threat_model, "model_dir": model_dir}
        return {"kind": loading.MODULE, "function": self.function, "normalize": self.normalize,
                **({"structure": self.structure} if self.structure else {})}

    def card(self) -> dict[str, Any]:
        """The models.parquet fields this spec sets: arch, method, target_sparsity, seed, base."""
        name = self.robustbench or (self.function or "").rpartition(":")[2]
        return {"arch": self.arch or name, "method": self.method, "target_sparsity": float(self.sparsity),
                "seed": self.seed, "base": self.base}


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` as a message shows it: its repr, cut to `limit` characters (a 20 MB value is not printed)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}...({len(text):,} characters)"


def read_models_file(path: str | Path) -> list[ModelSpec]:
    """The models a models file describes, every table checked; ValueError naming the file, table and key.
    Relative `weights` paths are relative to the file. The file is bounded before it is parsed (at most
    MAX_FILE_BYTES; nesting deeper than Python's parser can follow is one message, not a RecursionError),
    and a message shows at most SHOWN_CHARS of any value."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"models file {path}: {size:,} bytes, more than a models file may hold "
                             f"({MAX_FILE_BYTES:,}); one table per model takes a few hundred")
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"models file {path}: cannot read it ({error.strerror or error})") from None
    except RecursionError:  # thousands of nested arrays or inline tables: tomllib recurses once per level
        raise ValueError(f"models file {path}: nested too deeply to read (a models file's values are strings and "
                         "numbers)") from None
    except tomllib.TOMLDecodeError as error:
        twice = re.match(r"Cannot declare \('?(.*?)'?,\) twice", str(error))
        if twice:  # tomllib refuses a table declared twice: a model id given twice
            raise ValueError(f"models file {path}: table [{shown(twice.group(1))[1:-1]}] appears twice; each model "
                             "needs its own id") from None
        raise ValueError(f"models file {path}: not valid TOML ({shown(str(error))[1:-1]})") from None
    if not raw:
        raise ValueError(f"models file {path}: no [MODEL_ID] tables")
    specs = []
    for table, values in raw.items():
        where = f"models file {path}: table [{shown(table)[1:-1]}]"
        if not isinstance(values, dict):
            raise ValueError(f"{where}: must be a table of keys ({', '.join(FILE_KEYS)}), got a value")
        unknown = sorted(set(values) - set(FILE_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key {shown(unknown[0])}; known: {', '.join(FILE_KEYS)}")
        arguments = {}
        for key, value in values.items():
            name = FILE_KEYS[key]
            expected, described = ((float, int), "a number") if name == "sparsity" else \
                (int, "an integer") if name == "seed" else (str, "a string")
            if isinstance(value, bool) or not isinstance(value, expected):
                raise ValueError(f"{where}: key {key!r} must be {described}, got {shown(value)}")
            arguments[name] = value
        if "weights" in arguments:  # relative to the models file, wherever the command runs
            arguments["weights"] = str(path.parent / arguments["weights"])
        spec = ModelSpec(model_id=table, **arguments)
        for key, problem in spec.problems():
            raise ValueError(f"{where}: key {key!r}: {problem}")
        specs.append(spec)
    return specs


def check_lineage(specs: Sequence[ModelSpec], known: Sequence[str], where: str = "") -> None:
    """Every base names a model of `specs` or of the store (`known`), and no chain of bases is a cycle;
    ValueError naming the model and its `base`. Run before anything is written."""
    ids = {spec.model_id for spec in specs}
    named = {spec.model_id: spec.base for spec in specs}
    for spec in specs:
        if spec.base is not None and spec.base not in ids and spec.base not in known:
            every = sorted({*ids, *known})
            raise ValueError(f"{where}table [{spec.model_id}]: key 'base': no model {shown(spec.base)} in this run or "
                             f"the store (known: {', '.join(every[:10])}{f', ... ({len(every)} in all)' if len(every) > 10 else ''})")
    depth, cycle = bases.lineage(named)  # linear: 5,000 tables chained by base cost 5,000 steps
    if cycle:
        steps = " -> ".join(cycle[:6]) + (" -> ..." if len(cycle) > 6 else "")
        raise ValueError(f"{where}table [{cycle[0]}]: key 'base': the bases form a cycle ({steps})")
    deep = next((model_id for model_id, steps in depth.items() if steps > bases.MAX_DEPTH), None)
    if deep is not None:
        raise ValueError(f"{where}table [{deep}]: key 'base': {depth[deep]} bases from its root, more than "
                         f"{bases.MAX_DEPTH}")


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
    run record, `from_checkpoint`, or the user's description, `ModelSpec.card`); `loader` says how it is
    loaded again (`ModelSpec.loader`; CHECKPOINT_LOADER for ours).

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
    card, measured now on this machine; a model without a file of its own (a function that builds it, a
    RobustBench model) counts the bytes of its state dict as torch.save writes it. Timed runs per batch size:
    compute.footprint.repeats()."""
    repeats = footprint.repeats()
    for entry in entries:
        path = entry.info.get("checkpoint")
        file = path if path and Path(path).is_file() else None
        measured = footprint.measure(entry.model, file, image_size, repeats=repeats).to_dict()
        if file is None:
            measured["file_bytes"] = footprint.state_dict_bytes(entry.model)
        entry.info.update(measured)


def fill_sparsity(entries: Sequence[ExtractModel]) -> None:
    """A model from elsewhere without weights of its own (its function builds the pruned network, or a
    RobustBench model) has no unpruned architecture to count against: its measured sparsity becomes the
    fraction of the weights of the first model of its lineage in this run (its base's base ..., the
    unpruned model) that it has removed or zeroed. Run after `fill_bases`; other models keep theirs."""
    by_id = {entry.model_id: entry for entry in entries}
    for entry in entries:
        if entry.info.get("checkpoint") is not None or entry.info.get("base") not in by_id:
            continue
        root, seen = by_id[entry.info["base"]], {entry.model_id}
        while root.info.get("base") in by_id and root.model_id not in seen:
            seen.add(root.model_id)
            root = by_id[root.info["base"]]
        entry.info["sparsity"] = footprint.sparsity(entry.model, root.model)


CHECKPOINT_LOADER = {"kind": loading.CHECKPOINT}


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
    """Give each pruned prunescope checkpoint its base, the one place extraction sets it: the model whose run
    its record starts from (RunRecord.base_digest: a digest, matched against this run's records and the
    store's `recorded` model_id -> digest, or a model id), else the dense model of this run with its arch
    (store.bases.unpruned_base, the rule `compute migrate` fills old rows by). Models from elsewhere keep
    the base their card gives."""
    digests = {**recorded, **{e.model_id: e.run.digest for e in entries if e.run is not None}}
    by_digest = {digest: model_id for model_id, digest in digests.items()}
    ours = json.dumps(CHECKPOINT_LOADER, sort_keys=True)
    for entry in entries:
        if entry.info["loader"] != ours or entry.info["base"] is not None or entry.info["method"] == UNPRUNED:
            continue
        named = entry.run.base_digest if entry.run is not None else None
        if named in by_digest or named in digests:
            entry.info["base"] = by_digest.get(named, named)
            continue
        entry.info["base"] = bases.unpruned_base(entry.info, [{**e.info, "model_id": e.model_id} for e in entries])
