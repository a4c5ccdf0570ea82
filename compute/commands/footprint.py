"""Print what each checkpoint costs: parameters, non-zeros, bytes on disk and CPU latency per image.

Latency is the median of --repeats timed forward passes after a warm-up, at batch 1 and 256, on one CPU
thread (compute.footprint.THREADS); the one-minute load average is printed beside it, since timings on a
shared machine mean little without it.

Example:
    python -m compute footprint --checkpoints runs/dense.pt runs/channel-50.pt runs/dense-int8.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compute import checkpoint, footprint
from compute.commands._common import positive_int

HELP = "print parameters, non-zeros, file bytes and CPU latency per image of checkpoints"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="CKPT", help="prunescope checkpoints")
    parser.add_argument("--image-size", type=positive_int, default=32, help="input height and width (default 32)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs per batch size (default 5)")


def run(args: argparse.Namespace) -> int:
    print("| checkpoint | parameters | non-zeros | bytes | ms/image batch 1 | ms/image batch 256 | threads | load |")
    print("|---|---|---|---|---|---|---|---|")
    for path in map(Path, args.checkpoints):
        model, _ = checkpoint.load(path)
        f = footprint.measure(model, path, args.image_size, args.repeats)
        print(f"| {path.name} | {f.num_params:,} | {f.num_nonzero:,} | {f.file_bytes:,} | {f.latency_ms_batch1:.3f} "
              f"| {f.latency_ms_batch256:.3f} | {f.latency_threads} | {f.latency_load_average:.2f} |")
    return 0
