"""Prune one model with one method of the zoo and save a self-describing checkpoint.

Methods that start from a trained dense model (ft, ltr, lrr) take it from --dense, or train it
first when --dense is not given; ltr also needs the dense run's early iterate (--rewind, or recorded
while training the dense model here). Methods that start from init (random, gmp, snip, edgepopup, biprop)
build a fresh --arch model. Method options go through --option KEY=VALUE (see docs/pruning.md).

Examples:
    python -m compute prune --method ft --sparsity 0.9 --dense runs/dense.pt --out runs/ft-90.pt
    python -m compute prune --method edgepopup --sparsity 0.5 --epochs 15 --out runs/ep-50.pt
    python -m compute prune --method lrr --sparsity 0.9 --option rounds=3 --out runs/lrr-90.pt
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path
from typing import Any

import torch

from compute import checkpoint, datasets, models, pruning
from compute import device as devices
from compute.commands._common import (
    add_dataset_arguments,
    add_device_argument,
    dataset_options,
    non_negative_int,
    positive_float,
    positive_int,
    sparsity,
)
from compute.models.base import measured_sparsity
from compute.pruning.base import Method, epoch_steps, train_dense
from compute.study import model_id, rewind_path
from compute.train import TrainConfig, accuracy, channel_stats

HELP = "prune a model with one method (ft, random, gmp, ltr, lrr, snip, edgepopup, biprop)"
FINETUNE = {"epochs": 5, "lr": 0.01}  # defaults for methods that start from the trained dense model
SCRATCH = {"epochs": 10, "lr": 0.05}  # defaults for the dense model and methods that start from init
FLAGS = frozenset({"layerwise", "include_classifier"})  # options with their own command-line flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--method", required=True, choices=pruning.NAMES)
    parser.add_argument("--sparsity", type=sparsity, required=True, help="fraction of prunable weights removed")
    parser.add_argument("--out", required=True, help="checkpoint file to write")
    parser.add_argument("--dense", default=None, help="trained dense checkpoint (methods that start from one)")
    parser.add_argument("--rewind", default=None,
                        help="ltr: checkpoint of the dense run's early iterate (default: rewind/<dense name> "
                        "beside --dense, as `study` writes it)")
    parser.add_argument("--arch", default="small_cnn", choices=models.NAMES,
                        help="architecture when no --dense is given")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"training epochs of the method (default {FINETUNE['epochs']} from dense, "
                        f"{SCRATCH['epochs']} from init)")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help=f"peak learning rate (default {FINETUNE['lr']} from dense, {SCRATCH['lr']} from init; "
                        "edgepopup/biprop train scores with --option score_lr)")
    parser.add_argument("--dense-epochs", type=positive_int, default=SCRATCH["epochs"],
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
    if args.dense and not method.from_dense:
        raise ValueError(f"{args.method} trains from init and takes no --dense; give --arch instead")
    device = devices.pick(args.device)
    data = datasets.load(args.dataset, args.data_dir, args.download, **dataset_options(args))
    defaults = FINETUNE if method.from_dense else SCRATCH
    config = TrainConfig(epochs=defaults["epochs"] if args.epochs is None else args.epochs,
                         lr=defaults["lr"] if args.lr is None else args.lr, seed=args.seed)
    torch.manual_seed(args.seed)
    rewind_step = None
    if args.dense:
        model, meta = checkpoint.load(args.dense)
        arch, mean, std = meta["arch"], meta["mean"], meta["std"]
        if method.needs_rewind:
            rewind_file = args.rewind or rewind_path(Path(args.dense))
            rewind_model, rewind_meta = checkpoint.load(rewind_file)
            options["rewind_state"] = rewind_model.state_dict()
            rewind_step = rewind_meta["hparams"].get("rewind_step")
    else:
        arch = args.arch
        mean, std = channel_stats(data.train.images)
        model = models.build(arch, data.num_classes, mean, std)
        if method.from_dense:
            dense_config = TrainConfig(epochs=args.dense_epochs, lr=SCRATCH["lr"], seed=args.seed)
            rewind_step = epoch_steps(data.train, dense_config) if args.rewind_step is None else args.rewind_step
            rewind = train_dense(model, data.train, dense_config, device, rewind_step)
            print(f"dense model: test accuracy {accuracy(model, data.test, device):.4f}")
            if method.needs_rewind:
                options["rewind_state"] = rewind
    start = time.perf_counter()
    pruned = method.prune(model, data.train, args.sparsity, config, device, layerwise=args.layerwise,
                          include_classifier=args.include_classifier, **options)
    acc = accuracy(pruned, data.test, device)
    name = args.model_id or model_id(arch, args.method, args.sparsity, args.seed)
    saved_options = {k: v for k, v in options.items() if k != "rewind_state"}
    checkpoint.save(args.out, pruned, arch=arch, num_classes=data.num_classes, mean=mean, std=std,
                    dataset=data.name, hparams={
                        "model_id": name, "method": args.method, "target_sparsity": args.sparsity,
                        "seed": args.seed, "train": config.to_dict(), "layerwise": args.layerwise,
                        "include_classifier": args.include_classifier, "options": saved_options,
                        "parent": args.dense, "rewind_step": rewind_step if method.needs_rewind else None,
                        "seconds": time.perf_counter() - start, "test_accuracy": acc})
    print(f"{name}: sparsity {measured_sparsity(pruned):.4f}, test accuracy {acc:.4f} -> {args.out}")
    return 0
