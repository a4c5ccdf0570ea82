"""Build the demo store: a small CNN on the embedded digits dataset, dense and pruned, extracted on clean
and corrupted test images, with the embeddings of the Geometric similarity and Embedding pages.
Resumable: finished models and partitions are kept.

Example:
    python -m compute demo --out data/demo
    streamlit run dashboard/app.py -- --store data/demo
"""

from __future__ import annotations

import argparse

from compute import device as devices
from compute.commands._common import add_device_argument, parse_severities
from compute.demo import DemoPlan, build

HELP = "build the demo store on the embedded digits dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_device_argument(parser)
    parser.add_argument("--out", required=True, help="store directory to build (e.g. data/demo)")
    parser.add_argument("--severities", type=parse_severities, default=None,
                        help="corruption severities, e.g. 1-5 (default 1,3,5)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny setting for tests: 2 epochs, 60 test images, 3 corruptions")


def run(args: argparse.Namespace) -> int:
    plan = DemoPlan.quick() if args.quick else DemoPlan()
    timings = build(args.out, plan, devices.pick(args.device), severities=args.severities)
    phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items())
    print(f"demo store ready in {args.out} ({phases})")
    return 0
