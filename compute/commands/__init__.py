"""Command registry: one module per command, each with HELP, add_arguments(parser) and run(args) -> int.

Modules are imported when their command runs (`load`), so a light command (`report`, `verify`) does not pay
for torch: only the top-level `--help`, which lists every command, imports them all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS = {
    "demo": "compute.commands.demo",
    "train": "compute.commands.train",
    "corrupt": "compute.commands.corrupt",
    "extract": "compute.commands.extract",
    "embed": "compute.commands.embed",
    "index": "compute.commands.index",
    "prune": "compute.commands.prune",
    "quantize": "compute.commands.quantize",
    "footprint": "compute.commands.footprint",
    "study": "compute.commands.study",
    "report": "compute.commands.report",
    "export": "compute.commands.export",
    "mcp": "compute.commands.mcp",
    "verify": "compute.commands.verify",
    "verify-data": "compute.commands.verify_data",
    "migrate": "compute.commands.migrate",
}


def load(name: str) -> ModuleType:
    """The module of command `name`."""
    return importlib.import_module(COMMANDS[name])
