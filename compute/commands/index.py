"""Build a store's derived files: the serving copy every page reads (index/serving.duckdb: every prediction
row in DuckDB's format, sorted by setting, model and sample, resumable), the by-sample copy used by sample drill-down, the pre-aggregates that
keep whole-study views fast (store.aggregates: per-partition bit strings of right answers, per-sample
and per-class sums), and the per-partition sums of markers written by older versions. Every extraction
builds them once the store's work list is complete (with --shard: the shard that finishes last); run
this to rebuild them, or to upgrade an older store (one without them still works, more slowly). This also
stores the answers pages would otherwise compute per setting (compute.stored_answers: agreement, PIE
counts, pruning-fragile samples, local-geometry bins), each only when it is not fresh. A store
with a damaged or foreign file (a truncated models.parquet, a partition, a marker), or a symbolic link
or FIFO, is refused (exit 2) with every problem named (as `compute verify` lists them).

A store written before layers.parquet (what each model's pruning left of each layer) gets it here: every
model without layer rows is loaded from its card (checkpoints inside the store, or under --allow-root /
$PRUNESCOPE_ALLOW_ROOTS) and its layers recorded; the models that cannot be loaded any more are named.

Examples:
    python -m compute index --store data/study
    python -m compute index --store data/study --allow-root runs/
"""

from __future__ import annotations

import argparse

from compute import layers, stored_answers
from store import derived
from store.confine import allow_roots
from store.verify import require_clean

HELP = ("build the serving copy, the by-sample index and the pre-aggregates of a store (after sharded extraction), and the layer "
        "rows of models that have none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory")
    parser.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                        help="a directory outside the store whose checkpoints may be loaded for the layer rows "
                             "(repeatable; also $PRUNESCOPE_ALLOW_ROOTS, separated by ':')")


def run(args: argparse.Namespace) -> int:
    allow_roots(args.allow_root)
    require_clean(args.store, views=("samples", "models", "predictions", "layers"))  # links, manifest, files, markers
    upgraded, copy, path, aggregates = derived.build_all(args.store)
    print(f"{upgraded} markers upgraded; serving copy: {copy or 'none (no predictions yet)'}; "
          f"by-sample index: {path or 'none (no predictions yet)'}; "
          f"pre-aggregates: {', '.join(p.name for p in aggregates) or 'none'}")
    answers = stored_answers.build_all(args.store)  # each shows its progress
    print("stored answers per setting: " + ", ".join(f"{record} {path.name if path else 'none'}"
                                                     for record, path in answers.items()))
    added, failed = layers.index_missing(args.store)
    line = f"layers: {len(added)} model(s) added" if added else "layers: no model without them"
    if failed:
        line += "; cannot be loaded, so no layer rows: " + named_by_reason(failed)
    print(line)
    return 0


def named_by_reason(failed: dict[str, str], shown: int = 5) -> str:
    """The models grouped by why they failed, a few ids per reason and how many more (a study of 105 models
    without checkpoints is one line, not 105 sentences)."""
    by_reason: dict[str, list[str]] = {}
    for model, why in failed.items():
        by_reason.setdefault(why, []).append(model)
    parts = []
    for why, models in by_reason.items():
        more = f" and {len(models) - shown} more" if len(models) > shown else ""
        parts.append(f"{', '.join(models[:shown])}{more} ({why})")
    return "; ".join(parts)
