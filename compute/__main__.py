"""`python -m compute <command>`: every long job of prunescope. `--help` on each command explains it."""

from __future__ import annotations

import argparse
import sys

from compute.commands import COMMANDS
from compute.datasets.base import DataError
from compute.models.base import ContractError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compute",
        description="prunescope compute jobs: train and prune models, corrupt images, extract per-sample "
        "geometry into a Parquet store, and precompute embeddings for the dashboard.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (DataError, ContractError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
