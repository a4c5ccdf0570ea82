"""`python -m compute <command>`: every long job of prunescope. `--help` on each command explains it.

Whatever goes wrong outside the program (a missing or damaged input, a read-only or full disk, a path that
is a file, permissions) ends in one `error: <path>: <what>` line on stderr and exit code 2, never a
traceback; usage errors (argparse) also exit 2. Writers publish files atomically, so a failed run leaves
the files it had already written as they were.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from compute.commands import COMMANDS, load


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a command, only that command's module is imported (and described)."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="python -m compute",
        description="prunescope compute jobs: train and prune models, corrupt images, extract per-sample "
        "geometry into a Parquet store, precompute embeddings for the dashboard, and verify a store.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name in COMMANDS:
        if chosen in COMMANDS and name != chosen:
            sub.add_parser(name)  # listed, never described: the command line names another one
            continue
        module = load(name)
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def _input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input, not a bug: ValueError (DataError, StoreError and so the catalog's
    QueryError are ValueErrors) and the model contract's when the command loaded models (its module
    imports torch)."""
    errors: list[type[Exception]] = [ValueError]
    models = sys.modules.get("compute.models.base")
    if models is not None:
        errors.append(models.ContractError)
    return tuple(errors)


def output_path(args: argparse.Namespace) -> str | None:
    """Where a command writes (its --store or --out), to name when an OS error carries no file name."""
    return getattr(args, "store", None) or getattr(args, "out", None)


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def describe_os_error(error: OSError, fallback: str | None) -> str:
    """`<path>: <what>` for an OS error: its own file name, else the command's output path."""
    path = error.filename if error.filename is not None else fallback
    if isinstance(error, FileExistsError | NotADirectoryError) and path is not None:
        what = "a file is in the way: expected a directory"
        existing = [p for p in (path, error.filename2) if p is not None and os.path.isfile(p)]
        path = existing[0] if existing else path
    elif error.errno == errno.ENOSPC:
        what = "no space left on the device (nothing was replaced: free space and run again)"
    elif error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = f"{_lower(error.strerror or str(error))} (the command needs to write there)"
    else:
        what = _lower(error.strerror or str(error))
    if error.filename2 is not None and not isinstance(error, FileExistsError | NotADirectoryError):
        what += f" (with {error.filename2})"
    return f"{path}: {what}" if path is not None else what


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except OSError as error:
        print(f"error: {describe_os_error(error, output_path(args))}", file=sys.stderr)
    except Exception as error:
        if not isinstance(error, _input_errors()):
            raise
        print(f"error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
