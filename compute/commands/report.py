"""The paper table of a store: methods x corruptions with 95 % intervals and tests, ready to paste.

One row per replicate group (models of the same arch, method and sparsity differing only in seed; mean
over seeds with a Student t interval across them) or, with --by model, per model (Wilson interval over
the test samples). --columns full: clean accuracy, every corruption (mean over its severities), mean
corruption accuracy, mean corruption error (unnormalised mCE), accuracy drop (clean - corrupted) and
relative mCE (against each model's base, or --reference, leaving out corruptions that barely hurt
the reference; the notes say which). --columns summary: clean, mean corruption, relative mCE and one column per
corruption family, narrow enough for one column of a two-column paper. Cells read "mean [low, high]"
(markdown) or, in %, the mean with "low--high" in small type below it (latex: a complete booktabs table
with caption, legend and notes), best per column in bold and a mark where a row differs from its
reference (paired test, Holm over the cells shown); --format csv gives mean, low, high and p_value.

Examples:
    python -m compute report --store data/demo
    python -m compute report --store /tmp/seeds-store --format latex --columns summary > table.tex
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
    parser.add_argument("--columns", choices=report.COLUMN_SETS, default="full",
                        help="full: every corruption, mean corruption accuracy and error, accuracy drop, relative "
                             "mCE (default); summary: clean, mean corruption, relative mCE and one column per "
                             "corruption family (fits one column of a two-column paper)")
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
        notes = report.report_notes(catalog)
    finally:
        catalog.close()
    if table.is_empty():
        print(f"error: the store {args.store} has no predictions yet; run `python -m compute extract` first",
              file=sys.stderr)
        return 2
    sys.stdout.write(report.render_report(table, args.format, level=args.by, columns=args.columns, notes=notes))
    return 0
