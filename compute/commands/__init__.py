"""Command registry: one module per command, each with HELP, add_arguments(parser) and run(args) -> int."""

from compute.commands import corrupt, demo, embed, extract, index, migrate, prune, study, train

COMMANDS = {
    "demo": demo,
    "train": train,
    "corrupt": corrupt,
    "extract": extract,
    "embed": embed,
    "index": index,
    "migrate": migrate,
    "prune": prune,
    "study": study,
}
