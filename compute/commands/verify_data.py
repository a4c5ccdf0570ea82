"""Check a dataset folder you already have against the published per-file md5s, before trusting it.

Reads every file once (streaming, progress bar on stderr) and names each missing, extra or changed file,
one line each, then a summary line per folder; exit 1 when anything is wrong, 0 when every file matches.
md5s are cached by path, size and modification time ($XDG_CACHE_HOME/prunescope/file-md5.json), so a
second run on an unchanged folder reads nothing. Per-file md5s are published for CIFAR-10, CIFAR-10-C,
CIFAR-100 and CIFAR-100-C (docs/datasets.md lists them with their sources); archives that prunescope
downloads are checked as a whole when they arrive. `extract --verify-data` runs the same check first.

Examples:
    python -m compute verify-data --dataset cifar10 --data-dir data/ --corrupted-dir data/
    python -m compute verify-data --dataset cifar100 --corrupted-dir /datasets/CIFAR-100-C
"""

from __future__ import annotations

import argparse

from compute.datasets import checksums

HELP = "check a dataset folder against the published per-file md5s (exit 1 when a file is missing or changed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=sorted(checksums.DATASETS),
                        help="the dataset whose published files to check for")
    parser.add_argument("--data-dir", default=None,
                        help="the clean dataset: the folder holding cifar-10-batches-py/ (cifar-100-python/), or it")
    parser.add_argument("--corrupted-dir", default=None,
                        help="the corrupted copies: the folder holding CIFAR-10-C/ (CIFAR-100-C/), or it")


def run(args: argparse.Namespace) -> int:
    reports = checksums.check_dataset(args.dataset, args.data_dir, args.corrupted_dir)
    for report in reports:
        print("\n".join(report.lines()))
    return 1 if any(report.damaged for report in reports) else 0
