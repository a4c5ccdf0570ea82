"""The paper table of a store: methods x corruptions with 95 % intervals, ready to paste.

One row per replicate group (models of the same arch, method and sparsity differing only in seed; mean
over seeds with a Student t interval across them) or, with --by model, per model (Wilson interval over
the test samples). Columns: clean accuracy, every corruption (mean over its severities), mean corruption
accuracy and relative mCE (against each model's base, or --reference). Cells read "mean ± half the interval's
width"; --format csv gives the mean, low and high as separate numeric columns instead.

Examples:
    python -m compute report --store data/demo
    python -m compute report --store /tmp/seeds-store --by group --format latex > table.tex
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import report, uncertainty
from store.catalog import Catalog
from store.layout import StoreError

HELP = "print the methods x corruptions table with 95%% intervals (markdown, csv or latex)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory written by `compute extract`, `study` or `demo`")
    parser.add_argument("--by", choices=uncertainty.LEVELS, default="group",
                        help="group: one row per (arch, method, sparsity), mean over seeds (default); model: one row "
                             "per model")
    parser.add_argument("--format", choices=report.REPORT_FORMATS, default="markdown", help="output format (default: markdown)")
    parser.add_argument("--reference", default=None, metavar="MODEL_ID",
                        help="compare every model with this one (default: each model with its base, the model it "
                        "was derived from)")


def run(args: argparse.Namespace) -> int:
    if not Path(args.store).is_dir():
        print(f"error: no store directory at {args.store}", file=sys.stderr)
        return 2
    try:
        catalog = Catalog(args.store, reference=args.reference)
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        table = report.report_table(catalog, args.by)
    finally:
        catalog.close()
    if table.is_empty():
        print(f"error: the store {args.store} has no predictions yet; run `python -m compute extract` first",
              file=sys.stderr)
        return 2
    sys.stdout.write(report.render_report(table, args.format))
    return 0
