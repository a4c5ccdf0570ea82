"""Prune one model with one method of the zoo and save a self-describing checkpoint.

Methods that start from a trained dense model (ft, ltr, lrr) take it from --dense, or train it
first when --dense is not given; ltr also needs the dense run's early iterate (--rewind, or recorded
while training the dense model here). Methods that start from init (random, gmp, snip, edgepopup, biprop)
build a fresh --arch model. Method options go through --option KEY=VALUE (see docs/pruning.md).
A one-job study: the run record comes from compute.runs and the model is trained by
compute.runners.train_pruned (and fit_dense, for the dense model trained here), as in `compute study`.

N:M sparsity takes its sparsity from --pattern (2:4 removes half); channel pruning removes that fraction
of output channels, so its checkpoint holds a smaller network.

Examples:
    python -m compute prune --method ft --sparsity 0.9 --dense runs/dense.pt --out runs/ft-90.pt
    python -m compute prune --method channel --sparsity 0.5 --dense runs/dense.pt --out runs/channel-50.pt
    python -m compute prune --method nm --pattern 2:4 --dense runs/dense.pt --out runs/nm-2-4.pt
    python -m compute prune --method edgepopup --sparsity 0.5 --epochs 15 --out runs/ep-50.pt
    python -m compute prune --method lrr --sparsity 0.9 --option rounds=3 --out runs/lrr-90.pt
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from compute import checkpoint, datasets, models, pruning, runs
from compute import device as devices
from compute.commands._common import (
    add_dataset_arguments,
    add_device_argument,
    add_schedule_arguments,
    dataset_options,
    non_negative_int,
    positive_int,
    schedule_fields,
    sparsity,
)
from compute.identity import model_id, rewind_path
from compute.pruning.base import Method, epoch_steps
from compute.runners import fit_dense, train_pruned
from compute.train import TrainConfig, accuracy, channel_stats

HELP = "prune a model with one method (ft, random, gmp, ltr, lrr, snip, edgepopup, biprop, channel, nm)"
FLAGS = frozenset({"layerwise", "include_classifier"})  # options with their own command-line flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_device_argument(parser)
    finetune = ", ".join(f"{name} {value}" for name, value in runs.FINETUNE.items())
    add_schedule_arguments(parser, f"the method's default: {finetune} over TrainConfig's defaults when it starts "
                           "from the dense model, TrainConfig's defaults when it trains from init (edgepopup and "
                           "biprop train scores: --option score_lr)")
    parser.add_argument("--method", required=True, choices=pruning.NAMES)
    parser.add_argument("--sparsity", type=sparsity, default=None,
                        help="fraction of prunable weights removed (channel: of output channels; nm: from --pattern)")
    parser.add_argument("--pattern", default=None, metavar="N:M",
                        help="nm: keep at most N of every M weights along the input dimension (e.g. 2:4)")
    parser.add_argument("--out", required=True, help="checkpoint file to write")
    parser.add_argument("--dense", default=None, help="trained dense checkpoint (methods that start from one)")
    parser.add_argument("--rewind", default=None,
                        help="ltr: checkpoint of the dense run's early iterate (default: rewind/<dense name> "
                        "beside --dense, as `study` writes it)")
    parser.add_argument("--arch", default="small_cnn", choices=models.NAMES,
                        help="architecture when no --dense is given")
    parser.add_argument("--dense-epochs", type=positive_int, default=TrainConfig().epochs,
                        help="epochs of the dense model trained here when no --dense is given")
    parser.add_argument("--rewind-step", type=non_negative_int, default=None,
                        help="ltr without --dense: optimiser step recorded for rewinding (default: one epoch)")
    parser.add_argument("--layerwise", action="store_true", help="prune each layer to the sparsity (default: global)")
    parser.add_argument("--include-classifier", action="store_true", help="prune the classifier too")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="method option, e.g. rounds=3, score_lr=0.5, init=\"kaiming_normal\" (repeatable)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--model-id", default=None, help="id in the store (default: <arch>-<method>-<percent>-s<seed>)")


def parse_options(items: list[str], method: Method, name: str) -> dict[str, Any]:
    """KEY=VALUE pairs with TOML values (bare words are strings), checked against the method's options."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if key in FLAGS:
            raise ValueError(f"--option {item!r}: use --{key.replace('_', '-')}")
        if not sep or key not in method.options - FLAGS:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE with KEY one of "
                             f"{sorted(method.options - FLAGS)} ({name})")
        try:
            options[key] = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            options[key] = text
    return options


def run(args: argparse.Namespace) -> int:
    method = pruning.get(args.method)
    options = parse_options(args.option, method, args.method)
    for flag in (flag for flag in FLAGS if getattr(args, flag)):
        if flag not in method.options:
            raise ValueError(f"--{flag.replace('_', '-')}: {args.method} takes no such option")
        options[flag] = True
    target = _target_sparsity(args, method, options)
    if args.dense and not method.from_dense:
        raise ValueError(f"{args.method} trains from init and takes no --dense; give --arch instead")
    device = devices.pick(args.device)
    data = datasets.load(args.dataset, args.data_dir, args.download, **dataset_options(args))
    dense = rewind_state = base = rewind_step = None
    if args.dense:
        dense, meta = checkpoint.load(args.dense)
        arch, stats = meta["arch"], (meta["mean"], meta["std"])
        dense_run = runs.of_checkpoint(meta)
        base = runs.identity(meta, args.dense)
        if method.needs_rewind:
            rewind_state = checkpoint.load(args.rewind or rewind_path(Path(args.dense)))[0].state_dict()
            rewind_step = dense_run.rewind_step if dense_run else None
    else:
        arch, stats = args.arch, channel_stats(data.train.images)
        if method.from_dense:
            steps = epoch_steps(data.train, TrainConfig(epochs=args.dense_epochs))
            rewind_step = steps if args.rewind_step is None else args.rewind_step
            dense_run = runs.dense_run(arch, args.dataset, args.seed, {"epochs": args.dense_epochs}, rewind_step)
            dense, rewind_state = fit_dense(dense_run, data, stats, device)
            print(f"dense model: test accuracy {accuracy(dense, data.test, device):.4f}")
            base = dense_run.digest
    fields = {**runs.default_schedule(args.method), **schedule_fields(args)}
    record = runs.pruned_run(arch, args.dataset, args.method, target, args.seed, fields, options, base,
                             rewind_step)
    name = args.model_id or model_id(arch, args.method, target, args.seed)
    results = train_pruned(record, name, Path(args.out), data, stats, device, dense, rewind_state)
    print(f"{name}: sparsity {results['sparsity']:.4f}, test accuracy {results['test_accuracy']:.4f} -> {args.out}")
    return 0



def _target_sparsity(args: argparse.Namespace, method: Method, options: dict[str, Any]) -> float:
    """--sparsity, or the sparsity the method's options imply (nm: --pattern, which joins the options)."""
    if args.pattern is not None:
        if "pattern" not in method.options:
            raise ValueError(f"--pattern {args.pattern}: --method {args.method} takes no pattern (nm does)")
        options["pattern"] = args.pattern
    if method.implied_sparsity is None:
        if args.sparsity is None:
            raise ValueError(f"--sparsity is required for --method {args.method}")
        return args.sparsity
    implied = method.implied_sparsity(options)
    if args.sparsity is not None and abs(args.sparsity - implied) > 1e-9:
        raise ValueError(f"--sparsity {args.sparsity} disagrees with the {args.method} pattern "
                         f"{options.get('pattern')} (sparsity {implied})")
    return implied
