"""Check a store and name every problem: damaged, foreign or unexpected files, manifest values that the
files contradict, symbolic links (never followed). Prints one line per problem (file: what is wrong) and
exits 1 when there is any, 0 for a clean store. Checkpoints outside the store and the allowed roots are
printed as notes (attribution cannot load them), not as damage.

Run it on a store you were handed before serving it; pages and `compute index` refuse what it names.

Examples:
    python -m compute verify --store data/demo
    python -m compute verify --store data/study --quick
    python -m compute verify --store data/mine --allow-root runs/
"""

from __future__ import annotations

import argparse

from store.confine import allow_roots
from store.verify import attribution_notes, verify

HELP = "check a store and name every damaged or unexpected file (exit 1 when any)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory")
    parser.add_argument("--quick", action="store_true",
                        help="read Parquet footers only (skip decoding every page and its checksum)")
    parser.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                        help="a directory outside the store whose checkpoints may be loaded (repeatable; also "
                             "$PRUNESCOPE_ALLOW_ROOTS, separated by ':')")


def run(args: argparse.Namespace) -> int:
    allow_roots(args.allow_root)
    problems = verify(args.store, deep=not args.quick)
    for problem in problems:
        print(problem)
    for note in attribution_notes(args.store):
        print(f"note: {note}")
    print(f"{args.store}: {len(problems)} problem(s)" if problems else f"{args.store}: no problems found")
    return 1 if problems else 0
