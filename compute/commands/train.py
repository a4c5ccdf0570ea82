"""Train a dense model on a dataset and save a self-describing checkpoint.

Example:
    python -m compute train --arch small_cnn --dataset digits --epochs 10 --out runs/dense.pt
"""

from __future__ import annotations

import argparse

import torch

from compute import checkpoint, datasets, models
from compute import device as devices
from compute.commands._common import (
    add_dataset_arguments,
    add_device_argument,
    dataset_options,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from compute.train import TrainConfig, accuracy, channel_stats, train

HELP = "train a dense model and save a checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_device_argument(parser)
    defaults = TrainConfig()
    parser.add_argument("--arch", default="small_cnn", choices=models.NAMES, help="architecture")
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument("--lr", type=positive_float, default=defaults.lr, help="peak learning rate (cosine schedule)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=defaults.weight_decay)
    parser.add_argument("--flip", action="store_true", help="random horizontal flips (off: they change digits)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--model-id", default=None, help="id in the store (default: <arch>-dense-s<seed>)")
    parser.add_argument("--out", required=True, help="checkpoint file to write")


def run(args: argparse.Namespace) -> int:
    data = datasets.load(args.dataset, args.data_dir, args.download, **dataset_options(args))
    device = devices.pick(args.device)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, flip=args.flip, seed=args.seed)
    torch.manual_seed(args.seed)
    mean, std = channel_stats(data.train.images)
    model = models.build(args.arch, data.num_classes, mean, std)
    train(model, data.train, config, device)
    acc = accuracy(model, data.test, device)
    model_id = args.model_id or f"{args.arch}-dense-s{args.seed}"
    checkpoint.save(args.out, model, arch=args.arch, num_classes=data.num_classes, mean=mean, std=std,
                    dataset=data.name, hparams={"model_id": model_id, "method": "dense", "target_sparsity": 0.0,
                                                "seed": args.seed, "train": config.to_dict()})
    print(f"{model_id}: test accuracy {acc:.4f} -> {args.out}")
    return 0
