"""Build a store's derived indexes: the by-sample copy used by sample drill-down, and the per-partition
sums of markers written by older versions. Every extraction builds the index once the store's work list
is complete (with --shard: the shard that finishes last); run this to rebuild it, or to upgrade an older
store. A store with a damaged or foreign file (a truncated models.parquet, a partition, a marker), or a
symbolic link or FIFO, is refused (exit 2) with every problem named (as `compute verify` lists them).

Example:
    python -m compute index --store data/study
"""

from __future__ import annotations

import argparse

from store import derived
from store.verify import require_clean

HELP = "build the by-sample index of a store (after sharded extraction)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory")


def run(args: argparse.Namespace) -> int:
    require_clean(args.store, views=("samples", "models", "predictions"))  # links, manifest, files, markers
    upgraded = derived.summarize_markers(args.store)
    path = derived.build_sample_index(args.store)
    print(f"{upgraded} markers upgraded; by-sample index: {path or 'none (no predictions yet)'}")
    return 0
