"""`python -m bench [NAME ...]`: run the benchmarks (all by default), each printing its figures beside their
goals. `python -m bench NAME --option ...` runs one benchmark with its own options (`python -m bench NAME
--help` lists them), e.g. `python -m bench store --rows 100M --out DIR`, `python -m bench pages --store DIR`.
`store` builds a benchmark store and is not part of the default run."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("extraction", "corruptions", "queries", "store_size", "uncertainty", "pages", "load", "gpu")
TOOLS = ("store", "profile")  # run only when named


def main(argv: list[str]) -> int:
    if argv and argv[0] in (*BENCHMARKS, *TOOLS) and any(arg.startswith("-") for arg in argv[1:]):
        importlib.import_module(f"bench.{argv[0]}").main(argv[1:])
        return 0
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS) - set(TOOLS))
    if unknown:
        print(f"unknown benchmarks {unknown}; known: {', '.join((*BENCHMARKS, *TOOLS))}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
