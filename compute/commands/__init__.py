"""Command registry: one module per command, each with HELP, add_arguments(parser) and run(args) -> int."""

from compute.commands import corrupt, demo, embed, extract, index, prune, report, study, train, verify

COMMANDS = {
    "demo": demo,
    "train": train,
    "corrupt": corrupt,
    "extract": extract,
    "embed": embed,
    "index": index,
    "prune": prune,
    "study": study,
    "report": report,
    "verify": verify,
}
