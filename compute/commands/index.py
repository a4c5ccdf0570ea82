"""Build a store's derived indexes: the by-sample copy used by sample drill-down, and the per-partition
sums of markers written by older versions. Every extraction builds the index once the store's work list
is complete (with --shard: the shard that finishes last); run this to rebuild it, or to upgrade an older
store.

Example:
    python -m compute index --store data/study
"""

from __future__ import annotations

import argparse

from store import sample_index, writer

HELP = "build the by-sample index of a store (after sharded extraction)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory")


def run(args: argparse.Namespace) -> int:
    writer.read_manifest(args.store)
    upgraded = writer.summarize_markers(args.store)
    path = sample_index.build(args.store)
    print(f"{upgraded} markers upgraded; by-sample index: {path or 'none (no predictions yet)'}")
    return 0
