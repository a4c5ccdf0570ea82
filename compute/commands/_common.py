"""Arguments shared by several commands, defined once."""

from __future__ import annotations

import argparse

from compute import datasets


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", choices=datasets.NAMES,
                        help="dataset name (default: digits, embedded; cifar10 needs --data-dir or --download)")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the dataset in its published format (e.g. cifar-10-batches-py/)")
    parser.add_argument("--download", action="store_true",
                        help="download the dataset into --data-dir when it is not there (needs internet)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")


def parse_severities(text: str) -> list[int]:
    """'1,3,5' or '1-5' -> [1, 3, 5] / [1, 2, 3, 4, 5]."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(v) for v in part.split("-", 1))
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"severities must look like '1,3,5' or '1-5', got {text!r}") from None
    if not values or any(v < 1 or v > 5 for v in values):
        raise argparse.ArgumentTypeError(f"severities must be between 1 and 5, got {text!r}")
    return sorted(set(values))
