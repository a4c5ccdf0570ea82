"""Extract per-sample geometry of one or more checkpoints on clean and corrupted test images into a store.

Corrupted images are generated with compute.corruptions (any dataset), or read from a directory in the
published CIFAR-10-C layout with --corrupted-dir. Complete partitions are skipped, so a rerun resumes,
and a run killed at any moment leaves no partial file behind.

Past one machine: --shard K/N runs the K-th of N deterministic slices of the (model, corruption,
severity) work list (0 <= K < N; give every shard the same arguments), so a Slurm job array or any
scheduler fans out over one store (the shard that completes the store builds its by-sample index); --executor ray runs the work as Ray tasks.

Models from elsewhere: --model package.module:function (+ --weights, --normalize) or --robustbench NAME,
described with --arch, --method, --sparsity, --model-seed and --base (the model it was derived from), or
many at once in a models file (--models FILE.toml, one [MODEL_ID] table per model, the same keys).

Examples:
    python -m compute extract --store data/study --checkpoints runs/*.pt --severities 1-5
    python -m compute extract --store data/mine --model my_nets:resnet18 --weights dense.pt --method dense \
        --model-seed 0 --model-id r18-dense
    python -m compute extract --store data/mine --model my_nets:resnet18 --weights mag70.pt --method magnitude \
        --sparsity 0.7 --model-seed 0 --base r18-dense --model-id r18-mag70
    python -m compute extract --store data/mine --models models.toml
    python -m compute extract --store /shared/study --checkpoints runs/*.pt --shard $SLURM_ARRAY_TASK_ID/8
    python -m compute extract --store /shared/study --checkpoints runs/*.pt --executor ray --ray-address auto
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compute import byo, cards, corruptions, datasets, loading
from compute import device as devices
from compute.cards import ExtractModel, from_checkpoint, model_row
from compute.commands._common import (
    add_dataset_arguments,
    add_device_argument,
    dataset_options,
    non_negative_int,
    parse_severities,
    positive_int,
)
from compute.datasets import checksums
from compute.executors import EXECUTORS, RayExecutor
from compute.extract import run_extraction
from compute.inference import ExtractSummary
from compute.worklist import Shard
from store import layout, reader, vocabulary

HELP = "write per-sample geometry of checkpoints to a Parquet store"


def parse_shard(text: str) -> Shard:
    """argparse type for --shard K/N."""
    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_shard_argument(parser: argparse.ArgumentParser) -> None:
    """--shard K/N, for any command whose work list a scheduler may fan out."""
    parser.add_argument("--shard", type=parse_shard, default=Shard(), metavar="K/N",
                        help="run only the K-th of N deterministic slices of the work list (0 <= K < N; "
                        "default 0/1: everything), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")


def add_per_class_arguments(parser: argparse.ArgumentParser) -> None:
    """--all-classes-up-to N and --top-k K: which classes' logits a new store keeps per row (store format 2)."""
    parser.add_argument("--all-classes-up-to", type=positive_int, default=None, metavar="N",
                        help=f"keep every class's logit per row when the dataset has at most N classes (a new "
                        f"store's setting; default {layout.PerClass.all_up_to})")
    parser.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                        help=f"with more classes: keep the K largest logits and the true class's (default "
                        f"{layout.PerClass.top_k})")


def per_class(args: argparse.Namespace) -> layout.PerClass | None:
    """The per-class setting the flags ask for; None when neither is given (the store's own, or the default)."""
    if args.all_classes_up_to is None and args.top_k is None:
        return None
    default = layout.PerClass()
    return layout.PerClass(args.all_classes_up_to or default.all_up_to, args.top_k or default.top_k)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--store", required=True, help="store directory (created when missing)")
    parser.add_argument("--checkpoints", nargs="+", default=[], help="prunescope checkpoint files to extract "
                        "(a pruned model's base, its dense model, is recorded automatically)")
    parser.add_argument("--model", default=None, metavar="MODULE:FUNCTION",
                        help="bring your own model: a function returning a module that meets the model contract, "
                        "or ends in an nn.Linear or 1x1 conv (wrapped automatically); the module must be "
                        "importable from the working directory or PYTHONPATH")
    parser.add_argument("--weights", default=None, help="state-dict file loaded into --model")
    parser.add_argument("--structure", default=None, choices=byo.STRUCTURES,
                        help="from-weights: --model builds the unpruned float network and --weights is a "
                        "channel-pruned (e.g. Torch-Pruning) or torch.ao FX int8 copy's state dict; the layers are "
                        "narrowed and quantized as its tensors say before they load (README)")
    parser.add_argument("--robustbench", default=None, metavar="NAME",
                        help="a RobustBench model by name, e.g. Diffenderfer2021Winning_LRR (needs the optional "
                        "robustbench package and internet for the first download, into ./models)")
    parser.add_argument("--threat-model", default="corruptions", choices=cards.THREAT_MODELS,
                        help="RobustBench leaderboard of --robustbench (default: corruptions)")
    parser.add_argument("--model-id", default=None, help="store id of --model / --robustbench (default: the "
                        "function's or RobustBench name)")
    parser.add_argument("--normalize", default=None, metavar="imagenet|cifar10|cifar100|MEAN,STD",
                        help="--model expects normalised input: a named convention, or per-channel mean and std "
                        "as 6 numbers (r,g,b means then r,g,b stds) or 2 (the same for every channel); "
                        "default: the model takes [0, 1] images")
    card = parser.add_argument_group("model card of --model / --robustbench (what the model is)")
    card.add_argument("--arch", default=None, help="architecture name (default: the function's or RobustBench name)")
    card.add_argument("--method", default=cards.EXTERNAL,
                      help=f"how it was made, e.g. dense, magnitude, lrr (default: {cards.EXTERNAL})")
    card.add_argument("--sparsity", type=float, default=0.0, help="target sparsity, a fraction in [0, 1) "
                      "(the measured one is recorded too)")
    card.add_argument("--model-seed", type=non_negative_int, default=None, metavar="K",
                      help="its training seed; models that differ only in it form a replicate group (default: "
                      "none, the model is its own group). --seed is the corruption seed")
    card.add_argument("--base", default=None, metavar="MODEL_ID",
                      help="the model it was derived from (in this run or the store); comparisons pair it with it")
    parser.add_argument("--model-classes", default=None, metavar="NAME,NAME,...|@FILE",
                        help="the classes of the models' outputs, in output order (comma-separated, or @FILE with "
                        "one name a line), when they are not the dataset's: every dataset class must be among them "
                        "and its labels become their positions (a 9-class folder against a 10-output model). "
                        "Without it, a model whose output count differs from the dataset's classes is refused")
    parser.add_argument("--models", default=None, metavar="FILE.toml",
                        help="describe many models, one [MODEL_ID] table each with the keys model, weights, "
                        "normalize, robustbench, threat_model, arch, method, sparsity, seed, base, structure (README); "
                        "checked completely before anything is written")
    parser.add_argument("--corruptions", nargs="+", default=list(corruptions.NAMES), metavar="NAME",
                        help="corruptions to run (default: all 19)")
    parser.add_argument("--severities", type=parse_severities, default=list(vocabulary.SEVERITIES),
                        help="e.g. 1-5 or 1,3,5 (default 1-5)")
    parser.add_argument("--corrupted-dir", default=None,
                        help="read published corrupted images (CIFAR-10-C / CIFAR-100-C .npy files, "
                        "Tiny-ImageNet-C / ImageNet-C folders) from here instead of generating them; with "
                        "--download, fetch them here first")
    parser.add_argument("--verify-data", action="store_true",
                        help="first check --data-dir and --corrupted-dir against the published per-file md5s "
                        "(cifar10, cifar100; reads every file once, then cached; `verify-data` reports in full). "
                        "Without it, names, shapes and labels of every file read are checked")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N test images")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="corruption seed")
    add_per_class_arguments(parser)
    add_shard_argument(parser)
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default="local",
                        help="local: this process (default); ray: Ray tasks (pip install -r "
                        "requirements-optional.txt)")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster to join, e.g. auto (default: $RAY_ADDRESS, else a local instance)")


def report(summary: ExtractSummary, shard: Shard) -> str:
    """The closing lines: what was done, and loudly, rows kept with NaN/inf values."""
    lines = [f"shard {shard}: {summary.written} partitions written, {summary.skipped} already complete, "
             f"{summary.rows} rows, {summary.bytes} bytes, {summary.non_finite} rows with non-finite values, "
             f"{summary.stale_removed} stale temporary files removed"]
    if summary.non_finite:
        per_model = ", ".join(f"{model_id}: {n}" for model_id, n in sorted(summary.non_finite_by_model.items()))
        lines.append(f"warning: {summary.non_finite} rows have NaN/inf features or logits ({per_model}); "
                     "they are kept with finite = false (filter `finite` in the dashboard)")
    if summary.reset_models:
        lines.append(f"training record changed, extracted again: {', '.join(summary.reset_models)}")
    lines.append(f"by-sample index: {summary.index}" if summary.index else
                 "by-sample index: not built yet (other shards are still running; the last one to finish builds "
                 "it, or run `python -m compute index --store STORE`)")
    return "\n".join(lines)


def model_classes(text: str) -> tuple[str, ...]:
    """--model-classes: names separated by commas, or @FILE with one name a line (blank lines skipped)."""
    listed = Path(text[1:]).read_text().splitlines() if text.startswith("@") else text.split(",")
    names = [name.strip() for name in listed if name.strip()]
    if not names:
        raise ValueError(f"--model-classes {text[:80]!r} names no class")
    return tuple(names)


def model_specs(args: argparse.Namespace) -> list[cards.ModelSpec]:
    """The models from elsewhere the flags and the models file describe, each checked (ValueError naming the
    flag, or the file's table and key)."""
    card_flags = {"--arch": args.arch, "--method": args.method != cards.EXTERNAL or None,
                  "--sparsity": args.sparsity or None, "--model-seed": args.model_seed, "--base": args.base,
                  "--normalize": args.normalize, "--weights": args.weights, "--model-id": args.model_id,
                  "--structure": args.structure}
    given = [flag for flag, value in card_flags.items() if value is not None]
    if given and not (args.model or args.robustbench):
        raise ValueError(f"{given[0]} describes --model or --robustbench, and neither is given (prunescope "
                         "checkpoints carry their own card; a models file has the same keys per table)")
    specs = cards.read_models_file(args.models) if args.models else []
    if args.model or args.robustbench:
        name = args.robustbench or (args.model or "").rpartition(":")[2]
        spec = cards.ModelSpec(model_id=args.model_id or name, function=args.model, weights=args.weights,
                               normalize=args.normalize, robustbench=args.robustbench,
                               threat_model=args.threat_model, arch=args.arch, method=args.method,
                               sparsity=args.sparsity, seed=args.model_seed, base=args.base,
                               structure=args.structure)
        for key, problem in spec.problems():
            flag = {"model": "--model/--robustbench", "seed": "--model-seed", "id": "--model-id"}.get(
                key, f"--{key.replace('_', '-')}")
            raise ValueError(f"{flag}: {problem}")
        specs.append(spec)
    return specs


def stored_models(store: str) -> list[str]:
    """The model ids the store already holds (a base may name one)."""
    path = Path(store) / layout.MODELS
    return reader.read_table(path, columns=["model_id"]).column("model_id").to_pylist() if path.is_file() else []


def user_model(spec: cards.ModelSpec, dataset: str, image_size: int) -> ExtractModel:
    """Load a model from elsewhere and describe it with its card."""
    if spec.robustbench is not None and dataset not in cards.ROBUSTBENCH_DATASETS:
        raise ValueError(f"RobustBench model {spec.robustbench!r}: RobustBench has {', '.join(cards.ROBUSTBENCH_DATASETS)} "
                         f"models, the dataset is {dataset!r}")
    model_dir = str(Path(byo.ROBUSTBENCH_DIR).resolve()) if spec.robustbench is not None else None
    loader = spec.loader(dataset, model_dir)
    model = loading.load_model({"checkpoint": spec.weights, "loader": loader}, image_size)
    # The network the function builds is the unpruned one the weights were made from: sparsity counts the
    # weights removed from it (zeroed, or cut away with their channels).
    full = loading.load_model({"checkpoint": None, "loader": loader}, image_size) if spec.weights else None
    hparams = json.dumps({"model_id": spec.model_id, "loader": loader}, sort_keys=True)
    row = model_row(spec.model_id, model, {**spec.card(), "hparams": hparams, "full_model": full}, spec.weights,
                    loader)
    return ExtractModel(spec.model_id, model, row)


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.corruptions) - set(corruptions.NAMES))
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; known: {', '.join(corruptions.NAMES)}")
    executor = (RayExecutor(args.ray_address, gpus_per_task=0.0 if args.device == "cpu" else None)
                if args.executor == "ray" else None)
    specs = model_specs(args)
    data = datasets.load(args.dataset, args.data_dir, args.download, **dataset_options(args))
    if args.model_classes:
        data = data.with_class_names(model_classes(args.model_classes))
    if args.verify_data:
        checksums.refuse_damaged(args.dataset, args.data_dir, args.corrupted_dir)
    test = data.test.subset(args.limit)
    entries = [from_checkpoint(path) for path in args.checkpoints]
    cards.check_lineage(specs, [e.model_id for e in entries] + stored_models(args.store),
                        f"models file {args.models}: " if args.models else "--base: ")
    entries += [user_model(spec, data.name, data.image_size) for spec in specs]
    if not entries:
        raise ValueError("nothing to extract: give --checkpoints FILE ..., --model MODULE:FUNCTION, --robustbench "
                         "NAME or --models FILE.toml")
    if args.corrupted_dir:  # all of it, before the first partition is written
        datasets.check_corrupted(args.dataset, args.corrupted_dir, args.corruptions, args.severities, test,
                                 download=args.download)
    device = devices.pick("cpu" if args.executor == "ray" else args.device)
    summary = run_extraction(args.store, entries, data, test, args.corruptions, args.severities, device=device,
                             batch_size=args.batch_size, seed=args.seed, corrupted_dir=args.corrupted_dir,
                             limit=args.limit, shard=args.shard, executor=executor, per_class=per_class(args))
    print(report(summary, args.shard))
    return 0
