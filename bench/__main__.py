"""`python -m bench [NAME ...]`: run the benchmarks (all by default), each printing side-by-side ratios."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("extraction", "corruptions", "queries", "store_size", "uncertainty", "pages", "load", "gpu")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmarks {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
