"""Arguments shared by several commands, defined once."""

from __future__ import annotations

import argparse
import dataclasses

from compute import datasets, runs
from compute.train import TrainConfig
from store import vocabulary


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", choices=datasets.NAMES,
                        help="dataset name (default: digits, embedded; the others need --data-dir; "
                        "docs/datasets.md gives each layout)")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the dataset in its published format (e.g. cifar-10-batches-py/)")
    parser.add_argument("--download", action="store_true",
                        help="download the dataset (and, for extract, the corrupted copies into "
                        "--corrupted-dir) when not there: cifar10, cifar100, tinyimagenet (needs internet)")
    parser.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                        help="imagefolder only: resize the shorter side to N and crop the centre N x N "
                        "(default 224)")
    parser.add_argument("--subset", default=None, metavar="FILE",
                        help="imagenet only: evaluate the samples listed in FILE (lines <wnid>/<file>, e.g. "
                        "RobustBench's imagenet_test_image_ids.txt), in its order; `--subset robustbench`: "
                        "that 5,000-image list, shipped with prunescope")
    parser.add_argument("--clean-dir", default=None, metavar="DIR",
                        help="tinyimagenet only: the clean images Tiny-ImageNet-C was made from "
                        "(imagenet_val_bbox_crop/<wnid>/test_<k>.JPEG) as the test set, so each corrupted image "
                        "pairs with its clean one; without it, clean and corrupted images are different "
                        "photographs (per-sample comparisons are unpaired)")


def dataset_options(args: argparse.Namespace) -> dict:
    """The dataset options given on the command line, for `datasets.load(..., **options)`."""
    return {key: getattr(args, key, None) for key in ("image_size", "subset", "clean_dir")}


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
    if not values or not all(vocabulary.is_severity(v) for v in values):
        raise argparse.ArgumentTypeError(f"severities must be between 1 and 5, got {text!r}")
    return sorted(set(values))


def _number(kind: type, text: str, check, requirement: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {requirement}, got {text!r}") from None
    if not check(value):  # also false for NaN
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts, epochs, batch sizes, --limit)."""
    return _number(int, text, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds, steps)."""
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rates)."""
    return _number(float, text, lambda v: 0 < v < float("inf"), "a finite number > 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (weight decay)."""
    return _number(float, text, lambda v: 0 <= v < float("inf"), "a finite number >= 0")


def sparsity(text: str) -> float:
    """argparse type: a fraction of weights removed, strictly between 0 and 1."""
    return _number(float, text, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1")


def severity_or_clean(text: str) -> int:
    """argparse type: a corruption severity 1..5, or 0 for clean images."""
    return _number(int, text, lambda v: 0 <= v <= 5, "an integer in 0..5 (0 for clean)")


# The fields of a run's schedule (compute.runs; the run's seed is --seed), with their help and bounds.
SCHEDULE = tuple(f for f in dataclasses.fields(TrainConfig) if f.name in runs.SCHEDULE_FIELDS)


def add_schedule_arguments(parser: argparse.ArgumentParser, unset: str) -> None:
    """One flag per TrainConfig field but the seed (--epochs, --batch-size, --lr, ...), generated from the
    dataclass so the schedule's names and meanings are written once; a flag left out keeps the value
    `unset` describes (the run's default schedule)."""
    checks = {(int, "positive"): positive_int, (int, "non-negative"): non_negative_int,
              (float, "positive"): positive_float, (float, "non-negative"): non_negative_float}
    group = parser.add_argument_group("training schedule", f"flags left out: {unset}")
    for f in SCHEDULE:
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
        else:
            group.add_argument(flag, type=checks[kind, f.metadata["least"]], default=None,
                               help=f"{f.metadata['help']} (TrainConfig default {f.default})")


def schedule_fields(args: argparse.Namespace) -> dict:
    """The schedule fields the command line set (add_schedule_arguments); the rest keep their defaults."""
    return {f.name: getattr(args, f.name) for f in SCHEDULE if getattr(args, f.name) is not None}
