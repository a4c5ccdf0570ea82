"""Write a dataset's test images under the 19 corruptions x 5 severities, in the CIFAR-10-C layout.

The output directory is laid out as the published CIFAR-10-C (and read by compute.datasets.cifar10c):
    <name>.npy    uint8 (5*N, H, W, 3) RGB, severity-major: rows (s-1)*N : s*N are severity s,
                  each block in test-set order (N = number of test images)
    labels.npy    uint8 (5*N,): the N test labels repeated 5 times
    corrupt.json  the settings the images were made with (dataset, seed, N, image size)

Images are those of compute.corruptions.corrupt with the same --seed: a sample's corruption depends
only on (seed, test-set position, corruption, severity), so --batch-size, --device and --limit never
change an image (up to a level of rounding between CPU and CUDA in rare pixels).

Resumable and atomic: each <name>.npy is assembled in a hidden partial file, one severity block at a
time, and renamed into place when all five blocks are done; a rerun skips complete files and blocks.
--severities computes only the given blocks (a file appears once a run has done the remaining ones).
A directory made with other settings (dataset, seed, --limit) is refused rather than mixed.

Examples:
    python -m compute corrupt --out data/digits-c
    python -m compute corrupt --dataset cifar10 --data-dir data/cifar10 --out data/cifar10-c-ours
    python -m compute corrupt --out /tmp/c --names fog snow --limit 100 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from compute import corruptions, datasets
from compute import device as devices
from compute.commands._common import (
    add_dataset_arguments,
    add_device_argument,
    dataset_options,
    non_negative_int,
    parse_severities,
    positive_int,
)
from store import vocabulary, writer

HELP = "write corrupted test images in the CIFAR-10-C layout (<name>.npy + labels.npy)"
LABELS_FILE = "labels.npy"
SETTINGS_FILE = "corrupt.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--out", required=True, help="output directory (created when missing)")
    parser.add_argument("--names", nargs="+", default=list(corruptions.NAMES), metavar="NAME",
                        help="corruptions to write (default: all 19): " + ", ".join(corruptions.NAMES))
    parser.add_argument("--severities", nargs="+", type=parse_severities, default=[list(vocabulary.SEVERITIES)],
                        metavar="S", help="severity blocks to compute, e.g. 1 2 3 4 5, 1-5 or 1,3 (default 1-5)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N test images")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="corruption seed (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=512, help="images per corruption call (default 512)")


def run(args: argparse.Namespace) -> int:
    names = list(dict.fromkeys(args.names))
    unknown = [name for name in names if name not in corruptions.REGISTRY]
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; known: {', '.join(corruptions.NAMES)}")
    severities = sorted({severity for group in args.severities for severity in group})
    data = datasets.load(args.dataset, root=args.data_dir, download=args.download, **dataset_options(args))
    test = data.test.subset(args.limit)
    if data.num_classes > 256:
        raise ValueError(f"labels.npy is uint8, but {data.name} has {data.num_classes} classes")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"dataset": data.name, "seed": args.seed, "count": len(test),
                "image_size": list(test.images.shape[1:3])}
    _check_settings(out / SETTINGS_FILE, settings)
    _write_atomically(out / LABELS_FILE, np.tile(test.labels.astype(np.uint8), len(vocabulary.SEVERITIES)))

    plan = [(name, _missing_severities(out, name, len(test), severities)) for name in names]
    todo = sum(len(missing) for _, missing in plan) * len(test)
    device = devices.pick(args.device)
    done, skipped = [], []
    with tqdm(total=todo, unit="img", desc="corrupting") as progress:
        for name, missing in plan:
            if not missing:
                skipped.append(name)
                continue
            if _corrupt_blocks(out, name, test.images, missing, args.seed, args.batch_size, device, progress):
                done.append(name)
    pending = [name for name in names if name not in done and name not in skipped]
    print(f"{out}: {len(done)} files written, {len(skipped)} already complete"
          + (f", {len(pending)} waiting for other severities ({', '.join(pending)})" if pending else ""))
    return 0


def _check_settings(path: Path, settings: dict) -> None:
    """Record the settings on the first run; refuse to add images made with different ones."""
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != settings:
            raise ValueError(f"{path.parent} holds images made with {recorded}; this run would use {settings}. "
                             f"Use another --out, or the same dataset, --seed and --limit")
    else:
        _write_text_atomically(path, json.dumps(settings, indent=2) + "\n")


def _partial_paths(out: Path, name: str) -> tuple[Path, Path]:
    """The hidden file a <name>.npy is assembled in, and its list of finished severities."""
    return out / f".{name}.npy.partial", out / f".{name}.npy.partial.json"


def _missing_severities(out: Path, name: str, count: int, severities: list[int]) -> list[int]:
    """The requested severities whose block is not written yet."""
    if (out / f"{name}.npy").is_file():
        return []
    finished = set(_finished_severities(out, name))
    return [severity for severity in severities if severity not in finished]


def _finished_severities(out: Path, name: str) -> list[int]:
    """Severity blocks already in <name>'s partial file (none when there is no partial file)."""
    partial, finished_path = _partial_paths(out, name)
    if partial.is_file() and finished_path.is_file():
        return json.loads(finished_path.read_text())
    return []


def _corrupt_blocks(out: Path, name: str, images: np.ndarray, severities: list[int], seed: int,
                    batch_size: int, device: torch.device, progress: tqdm) -> bool:
    """Fill the given severity blocks of <name>; True when the file is complete and in place."""
    count = len(images)
    partial, finished_path = _partial_paths(out, name)
    finished = _finished_severities(out, name)
    shape = (len(vocabulary.SEVERITIES) * count, *images.shape[1:])
    if finished:
        blocks = np.lib.format.open_memmap(partial, mode="r+")
    else:
        blocks = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
    for severity in severities:
        rows = slice((severity - 1) * count, severity * count)
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            blocks[rows][start:stop] = corruptions.corrupt(images[start:stop], name, severity, seed=seed,
                                                           sample_ids=np.arange(start, stop), device=device)
            progress.update(stop - start)
        blocks.flush()
        finished = sorted({*finished, severity})
        _write_text_atomically(finished_path, json.dumps(finished))
    del blocks
    if finished != list(vocabulary.SEVERITIES):
        return False
    os.replace(partial, out / f"{name}.npy")
    finished_path.unlink()
    return True


def _write_atomically(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary name, then rename; an identical existing file is left alone."""
    if path.is_file():
        existing = np.load(path, allow_pickle=False)
        if existing.dtype == array.dtype and np.array_equal(existing, array):
            return
    with writer.atomically(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, array)


def _write_text_atomically(path: Path, text: str) -> None:
    with writer.atomically(path) as temporary:
        temporary.write_text(text)
