"""Serve a store to an AI agent over MCP (the Model Context Protocol, stdio): read-only tools for the model
cards, the evaluation matrix, the free filter language, the preset questions (flipped by pruning, ...), one
sample's values with its image (PNG) and the paper table as Markdown. Answers are bounded in rows and
bytes; errors are one line; nothing is written. An MCP client starts this command itself (README "Agents:
the MCP server" shows a client's configuration); stdout carries the protocol, so the command prints
nothing else there.

Examples:
    python -m compute mcp --store data/demo
    python -m compute mcp --store /data/study --allow-root /data/checkpoints
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compute import mcp_server
from store import confine
from store.layout import StoreError
from store.verify import validated_manifest

HELP = "serve a store's read-only questions to AI agents over MCP (stdio)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory written by `compute extract`, `study` or `demo`")
    parser.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                        help="a directory outside the store whose files may be read (corrupted images the store "
                        "records there); repeatable, added to $PRUNESCOPE_ALLOW_ROOTS")


def run(args: argparse.Namespace) -> int:
    if not Path(args.store).is_dir():
        raise StoreError(f"no store directory at {args.store}")
    validated_manifest(args.store, images=False)  # a damaged store fails here, in one line, not in the first tool
    confine.allow_roots(args.allow_root)
    mcp_server.serve(args.store)
    return 0
