"""File digests, computed in one place: provenance's per-file sha256, the archive and dataset checks of
compute.datasets (md5 as published, sha256 where pinned) and the test fixtures all read files through here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time: hashlib releases the GIL on chunks this large


def file_digests(path: str | Path, algorithms: Sequence[str] = ("sha256",),
                 progress: Callable[[int], object] | None = None) -> tuple[str, ...]:
    """The hex digests of a file's bytes, one per algorithm (hashlib's constructors: "md5", "sha256"), read once in
    chunks; `progress` is called with the size of each chunk read (a progress bar's update)."""
    hashes = [getattr(hashlib, name)(usedforsecurity=False) for name in algorithms]
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            for digest in hashes:
                digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return tuple(digest.hexdigest() for digest in hashes)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (sha256 unless `algorithm` names another of hashlib's)."""
    return file_digests(path, (algorithm,))[0]
