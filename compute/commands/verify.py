"""Check a store and name every problem: damaged, foreign or unexpected files, manifest values that the
files contradict, symbolic links (never followed), checkpoint paths that leave the store. Prints one line
per problem (file: what is wrong) and exits 1 when there is any, 0 for a clean store.

Run it on a store you were handed before serving it; pages and `compute index` refuse what it names.

Examples:
    python -m compute verify --store data/demo
    python -m compute verify --store data/study --quick
"""

from __future__ import annotations

import argparse

from store.verify import verify

HELP = "check a store and name every damaged or unexpected file (exit 1 when any)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory")
    parser.add_argument("--quick", action="store_true",
                        help="read Parquet footers only (skip decoding every page and its checksum)")


def run(args: argparse.Namespace) -> int:
    problems = verify(args.store, deep=not args.quick)
    for problem in problems:
        print(problem)
    print(f"{args.store}: {len(problems)} problem(s)" if problems else f"{args.store}: no problems found")
    return 1 if problems else 0
