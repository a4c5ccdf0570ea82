"""Extract per-sample geometry of one or more checkpoints on clean and corrupted test images into a store.

Corrupted images are generated with compute.corruptions (any dataset), or read from a directory in the
published CIFAR-10-C layout with --corrupted-dir. Complete partitions are skipped, so a rerun resumes.

Example:
    python -m compute extract --store data/study --checkpoints runs/*.pt --severities 1-5
"""

from __future__ import annotations

import argparse

from compute import corruptions, datasets
from compute import device as devices
from compute.commands._common import add_dataset_arguments, add_device_argument, parse_severities
from compute.datasets import cifar10c
from compute.extract import extract, from_checkpoint
from store import writer

HELP = "write per-sample geometry of checkpoints to a Parquet store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--store", required=True, help="store directory (created when missing)")
    parser.add_argument("--checkpoints", nargs="+", required=True, help="checkpoint files to extract")
    parser.add_argument("--corruptions", nargs="+", default=list(corruptions.NAMES), metavar="NAME",
                        help="corruptions to run (default: all 19)")
    parser.add_argument("--severities", type=parse_severities, default=[1, 2, 3, 4, 5],
                        help="e.g. 1-5 or 1,3,5 (default 1-5)")
    parser.add_argument("--corrupted-dir", default=None,
                        help="read corrupted images from this CIFAR-10-C-layout directory instead of generating")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N test images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0, help="corruption seed")


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.corruptions) - set(corruptions.NAMES))
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; known: {', '.join(corruptions.NAMES)}")
    data = datasets.load(args.dataset, args.data_dir, args.download)
    test = data.test.subset(args.limit)
    entries = [from_checkpoint(path) for path in args.checkpoints]
    writer.init_store(args.store, dataset=data.name, class_names=data.class_names, images=test.images,
                      labels=test.labels, corruptions=args.corruptions, severities=args.severities)
    load_corrupted = None
    if args.corrupted_dir:
        def load_corrupted(name: str, severity: int):
            return cifar10c.load_corrupted(args.corrupted_dir, name, severity, limit=args.limit).images
    summary = extract(args.store, entries, test, data.num_classes, args.corruptions, args.severities,
                      device=devices.pick(args.device), batch_size=args.batch_size, seed=args.seed,
                      load_corrupted=load_corrupted)
    writer.upsert_models(args.store, [entry.info for entry in entries])
    print(f"{summary.written} partitions written, {summary.skipped} already complete, {summary.rows} rows, "
          f"{summary.bytes} bytes, {summary.non_finite} rows with non-finite values")
    return 0
