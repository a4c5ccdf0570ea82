"""A study as a folder that opens from disk in a browser: no server, no network, nothing fetched from outside.

SITE/index.html holds the overview with the lineage, the evaluation matrix with its 95 % intervals, the
similarity map, the robustness predictors, the paper table and a gallery of the N most fragile samples under
each corruption (the PNG images the models saw, with their values), linked to each other. The charts keep
their tooltips and click selections (the Vega bundle is written beside it, SITE/assets/vega.js); every store
text is escaped. The command prints the export's size (a demo-sized study stays well under 20 MB; --fragile
bounds the gallery) and its time to build. An earlier export at SITE is replaced; any other non-empty
folder is refused.

The pages are the dashboard's charts, so the export is written by the dashboard layer (dashboard.export)
in a child process: compute never imports the dashboard (docs/layers.md).

Examples:
    python -m compute export --store data/demo --out /tmp/demo-site
    python -m compute export --store data/demo --out /tmp/demo-site --fragile 24
"""

from __future__ import annotations

import argparse
import subprocess
import sys

HELP = "write a study as a static site that opens from disk (no server, no network)"
MAX_FRAGILE = 100  # gallery samples per corruption at most: the export's size stays bounded


def fragile_count(text: str) -> int:
    """argparse type: the gallery's samples per corruption, 1..MAX_FRAGILE (no torch-loading helpers here:
    the dashboard's process imports this module for its arguments)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= value <= MAX_FRAGILE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_FRAGILE}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory written by `compute extract`, `study` or `demo`")
    parser.add_argument("--out", required=True, metavar="SITE", help="folder to write (index.html, assets/, images/)")
    parser.add_argument("--fragile", type=fragile_count, default=12, metavar="N",
                        help=f"samples per corruption in the gallery of fragile samples (default 12, at most {MAX_FRAGILE})")


def run(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "dashboard.export", "--store", args.store, "--out", args.out,
               "--fragile", str(args.fragile)]
    return subprocess.run(command, check=False).returncode
