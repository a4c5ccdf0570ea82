"""Build a store's derived files: the by-sample copy used by sample drill-down, the pre-aggregates that
keep whole-study views fast (store.aggregates: per-partition bit strings of right answers, per-sample
and per-class sums), and the per-partition sums of markers written by older versions. Every extraction
builds them once the store's work list is complete (with --shard: the shard that finishes last); run
this to rebuild them, or to upgrade an older store (one without them still works, more slowly). A store
with a damaged or foreign file (a truncated models.parquet, a partition, a marker), or a symbolic link
or FIFO, is refused (exit 2) with every problem named (as `compute verify` lists them).

Example:
    python -m compute index --store data/study
"""

from __future__ import annotations

import argparse

from store import derived
from store.verify import require_clean

HELP = "build the by-sample index and the pre-aggregates of a store (after sharded extraction)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory")


def run(args: argparse.Namespace) -> int:
    require_clean(args.store, views=("samples", "models", "predictions"))  # links, manifest, files, markers
    upgraded, path, aggregates = derived.build_all(args.store)
    print(f"{upgraded} markers upgraded; by-sample index: {path or 'none (no predictions yet)'}; "
          f"pre-aggregates: {', '.join(p.name for p in aggregates) or 'none'}")
    return 0
