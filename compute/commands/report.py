"""The paper table of a store: methods x corruptions with 95 % intervals and tests, ready to paste.

One row per replicate group (models of the same arch, method and sparsity differing only in seed; mean
over seeds with a Student t interval across them) or, with --by model, per model (Wilson interval over
the test samples). --columns picks column groups, a comma list: summary (clean accuracy, mean corruption
accuracy, relative mCE against each model's base, or --reference, leaving out corruptions that barely
hurt the reference; the notes say which), errors (mean corruption error, accuracy drop), families (one
column per corruption family), corruptions (every corruption, mean over its severities); full (the
default) is corruptions,summary,errors; summary,families fits one column of a two-column paper.
--intervals puts each cell's 95 % interval on a row below the means (latex default), inline after the
mean (markdown default) or nowhere; --split N prints N tables (latex default: the fewest that fit a
two-column paper with every number at 7 pt). The best per column is bold (with every row whose interval
overlaps it; none where all do), and a mark says where a row differs from its reference (per model:
exact McNemar test; per group: t test over seeds, none below 3 seeds; Holm over the cells shown);
--format csv gives mean, low, high and p_value.

Examples:
    python -m compute report --store data/demo
    python -m compute report --store /tmp/seeds-store --format latex --columns summary,families > table.tex
    python -m compute report --store data/demo --format latex --intervals inline --split 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import report
from store import vocabulary
from store.catalog import Catalog
from store.layout import StoreError

HELP = "print the methods x corruptions table with 95%% intervals and tests (markdown, csv or latex)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory written by `compute extract`, `study` or `demo`")
    parser.add_argument("--by", choices=vocabulary.LEVELS, default="group",
                        help="group: one row per (arch, method, sparsity), mean over seeds (default); model: one row "
                             "per model")
    parser.add_argument("--format", choices=report.REPORT_FORMATS, default="markdown", help="output format (default: markdown)")
    parser.add_argument("--columns", default=report.FULL, metavar="GROUPS",
                        help="column groups, a comma list of: " + "; ".join(f"{g} ({w})" for g, w in
                                                                        report.COLUMN_GROUPS.items())
                        + f"; or {report.FULL} (default: corruptions,summary,errors). summary,families fits one "
                        "column of a two-column paper")
    parser.add_argument("--intervals", choices=report.INTERVALS, default=None,
                        help="where each cell's 95%% interval goes: a row below the means (latex default), inline "
                             "after the mean (markdown default) or none (the csv keeps them)")
    parser.add_argument("--split", type=int, default=None, metavar="N",
                        help="print the table as N tables of nearly equal column counts (default: latex, the "
                             "fewest tables that fit a two-column paper with every number at 7 pt; markdown, one)")
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
        report.column_groups(args.columns)
    except ValueError as error:
        print(f"error: --columns: {error}", file=sys.stderr)
        return 2
    if args.split is not None and args.split < 1:
        print(f"error: --split: {args.split} tables; give 1 or more", file=sys.stderr)
        return 2
    try:
        table = report.report_table(catalog, args.by)
        notes = report.report_notes(catalog, args.by)
    finally:
        catalog.close()
    if table.is_empty():
        print(f"error: the store {args.store} has no predictions yet; run `python -m compute extract` first",
              file=sys.stderr)
        return 2
    sys.stdout.write(report.render_report(table, args.format, level=args.by, columns=args.columns,
                                          intervals=args.intervals, split=args.split, notes=notes))
    return 0
