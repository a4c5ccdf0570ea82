"""Train a dense model on a dataset and save a self-describing checkpoint: a one-job study.

The model's run record is built by compute.runs and trained by compute.runners.train_dense, as every dense
model of a study is; ltr's rewind iterate (after one epoch) is saved as rewind/<checkpoint name> beside
the checkpoint, where `prune --method ltr --dense CKPT` looks for it.

Example:
    python -m compute train --arch small_cnn --dataset digits --epochs 10 --out runs/dense.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compute import datasets, models, runs
from compute import device as devices
from compute.commands._common import (
    add_dataset_arguments,
    add_device_argument,
    add_schedule_arguments,
    dataset_options,
    non_negative_int,
    schedule_fields,
)
from compute.identity import model_id
from compute.pruning.base import epoch_steps
from compute.runners import train_dense
from compute.train import TrainConfig, channel_stats
from store.vocabulary import UNPRUNED

HELP = "train a dense model and save a checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_device_argument(parser)
    add_schedule_arguments(parser, "TrainConfig's defaults (compute/train.py)")
    parser.add_argument("--arch", default="small_cnn", choices=models.NAMES, help="architecture")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--model-id", default=None, help="id in the store (default: <arch>-dense-s<seed>)")
    parser.add_argument("--out", required=True, help="checkpoint file to write")


def run(args: argparse.Namespace) -> int:
    data = datasets.load(args.dataset, args.data_dir, args.download, **dataset_options(args))
    fields = schedule_fields(args)
    rewind_step = epoch_steps(data.train, TrainConfig(**fields))
    record = runs.dense_run(args.arch, args.dataset, args.seed, fields, rewind_step)
    name = args.model_id or model_id(args.arch, UNPRUNED, 0.0, args.seed)
    results = train_dense(record, name, Path(args.out), data, channel_stats(data.train.images),
                          devices.pick(args.device))
    print(f"{name}: test accuracy {results['test_accuracy']:.4f} -> {args.out}")
    return 0
