"""Provenance: how each setting's images were made, recorded beside the numbers and checked before reuse.

`manifest.json` holds a `provenance` object keyed "<corruption>/<severity>" ("clean/0" for the clean
images), each value one of

    {"source": "stored", "path": "images/clean.npy", "sha256": H}
        the store's own copy (the clean test images; `path` is relative to the store)
    {"source": "generated", "seed": S, "implementation": V}
        made by compute.corruptions version V (compute.corruptions.IMPLEMENTATION) with seed S
    {"source": "files", "path": P, "rows": [A, B], "sha256": H}
        rows A:B of the .npy file P (absolute; e.g. one severity of a CIFAR-10-C file, cut by --limit)
    {"source": "files", "layout": "folders", "path": D, "size": N, "decode": R, "sha256": T}
        one image file per sample under the tree D (absolute; a `<corruption>/<severity>` folder of
        Tiny-ImageNet-C, ImageNet-C or an image folder), read as extraction reads them: as they are when
        N x N, else through the dataset's resize rule R (compute.datasets.folders.rule_spec, e.g.
        ["resize_crop", 256, 224]); `"paired": false` when the files are not copies of the clean
        images row for row (Tiny-ImageNet-C without its clean crops: each row is another photograph of
        the same class), so a per-sample clean-vs-corrupted comparison of that setting is unpaired

where H is the sha256 of the exact uint8 array the model read (C order, no header). For a tree, the
files' own bytes are hashed (reading them costs no decoding): the listing
`images/provenance/<corruption>_<severity>.parquet` (layout.LISTING_SCHEMA) holds each sample's key
(`<class>/<file>`, relative to D) and its file's sha256, and T is the sha256 of the lines
"<key> <file sha256>\n" in sample order, so T stands for the whole setting (two trees mix only when
every file is the same) and `compute.pixels.image` checks one file, not the tree. Every extraction
records the provenance of the settings it runs before it writes anything, under the store's lock, and is
refused when the store already records another one for a setting (`ProvenanceConflict`, naming the
setting and both sources): one setting's partitions never mix images made two ways. `compute.pixels.image`
uses the record to return exactly the pixels a model saw.

The models' training records are provenance too: `training` maps each model id to the digest of the
run record its checkpoint was trained from (compute.runs.RunRecord); `record_training` resets a model
whose digest changed, so its partitions are computed again from the new checkpoint.

A store written before provenance existed has no `provenance` object: settings it already holds stay
unrecorded (their images cannot be shown, `compute.pixels.image` says why), new settings are recorded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from store import layout, reader, writer
from store.confine import regular
from store.digests import file_digest
from store.layout import StoreError

KEY = "provenance"
CLEAN_KEY = f"{layout.CLEAN}/0"
PAIRED = "paired"  # False in a tree record whose images are not the clean images' copies


class ProvenanceConflict(StoreError):
    """An extraction would mix images made another way into a setting the store already holds."""


def key(corruption: str, severity: int) -> str:
    """"fog/3"; the clean images are "clean/0"."""
    return f"{corruption}/{int(severity)}"


def sha256(images: np.ndarray) -> str:
    """Hex sha256 of an array's bytes in C order (the pixels, no header)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(images)).cast("B")).hexdigest()


def stored(images: np.ndarray, path: str = layout.CLEAN_IMAGES) -> dict[str, Any]:
    return {"source": "stored", "path": path, "sha256": sha256(images)}


def generated(seed: int, implementation: str) -> dict[str, Any]:
    return {"source": "generated", "seed": int(seed), "implementation": implementation}


def from_files(path: str | Path, rows: tuple[int, int], images: np.ndarray) -> dict[str, Any]:
    return {"source": "files", "path": str(Path(path).resolve()), "rows": [int(rows[0]), int(rows[1])],
            "sha256": sha256(images)}


class Listing(NamedTuple):
    """The files a setting was read from, in sample order: keys relative to the tree, hex sha256 of each."""

    keys: tuple[str, ...]
    digests: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """The whole setting's digest: sha256 of "<key> <file sha256>\\n" per sample, in order."""
        lines = "".join(f"{key} {digest}\n" for key, digest in zip(self.keys, self.digests, strict=True))
        return hashlib.sha256(lines.encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (a regular file: StoreError for a FIFO, device or socket)."""
    return file_digest(regular(path))


def from_tree(paths: Sequence[str | Path], keys: Sequence[str], size: int,
              decode: Sequence[Any] | None) -> tuple[dict[str, Any], Listing]:
    """The record and listing of a setting read from one file per sample (`paths[i]` = tree / `keys[i]`);
    `decode` is the resize rule applied to files that are not `size` x `size`. Hashes bytes, decodes nothing."""
    if not paths:
        raise ValueError("a tree setting needs at least one file")
    first = Path(paths[0])
    tree = Path(*first.parts[:len(first.parts) - len(Path(keys[0]).parts)]).resolve()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # hashlib releases the GIL
        listing = Listing(tuple(keys), tuple(pool.map(file_sha256, paths)))
    return ({"source": "files", "layout": "folders", "path": str(tree), "size": int(size),
             "decode": None if decode is None else list(decode), "sha256": listing.sha256}, listing)


def listing_path(root: str | Path, name: str) -> Path:
    """Where the listing of setting `name` ("fog/3") lives: images/provenance/fog_3.parquet."""
    corruption, severity = name.split("/")
    return Path(root) / layout.IMAGES / layout.LISTINGS / f"{corruption}_{int(severity)}.parquet"


def write_listing(root: str | Path, name: str, listing: Listing) -> None:
    table = pa.table({"sample_id": np.arange(len(listing.keys), dtype=np.int64), "key": list(listing.keys),
                      "sha256": list(listing.digests)}, schema=layout.LISTING_SCHEMA)
    writer.write_parquet(Path(root), table, listing_path(root, name))


def read_listing(root: str | Path, name: str, sha256: str) -> Listing:
    """The listing of setting `name`, checked against the record's `sha256`; StoreError naming the file."""
    path = listing_path(root, name)
    try:
        stat = path.stat()
    except OSError as error:
        raise StoreError(f"{path}, the list of files the models read for {name}, is missing: "
                                f"{error.strerror}") from error
    return _listing(str(path), stat.st_mtime_ns, stat.st_size, name, sha256)


@functools.lru_cache(maxsize=16)
def _listing(path: str, _mtime_ns: int, _size: int, name: str, sha256: str) -> Listing:
    try:
        table = reader.read_table(path, columns=["sample_id", "key", "sha256"])
    except (OSError, pa.ArrowException, StoreError) as error:
        raise StoreError(f"{path}, the list of files the models read for {name}, cannot be read: "
                                f"{error}") from error
    table = table.sort_by("sample_id")
    listing = Listing(tuple(table.column("key").to_pylist()), tuple(table.column("sha256").to_pylist()))
    if listing.sha256 != sha256:
        raise StoreError(f"{path}, the list of files the models read for {name}, does not match the "
                                f"manifest's sha256 {sha256[:12]} (changed since extraction)")
    return listing


def describe(entry: Mapping[str, Any] | None) -> str:
    """One line a person reads: where a setting's images came from."""
    if not entry:
        return "no record (store written before provenance was recorded)"
    source = entry.get("source")
    if source == "generated":
        return f"generated by compute.corruptions {entry.get('implementation')} with seed {entry.get('seed')}"
    if source == "files" and entry.get("layout") == "folders":
        return f"the image files under {entry.get('path')} (sha256 {str(entry.get('sha256'))[:12]})"
    if source == "files":
        start, stop = entry.get("rows", ("?", "?"))
        return f"rows {start}:{stop} of {entry.get('path')} (sha256 {str(entry.get('sha256'))[:12]})"
    if source == "stored":
        return f"the store's {entry.get('path')} (sha256 {str(entry.get('sha256'))[:12]})"
    return f"unknown source {entry!r}"


def same(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when both describe the same pixels: equal records, or the same file content at another path."""
    if recorded == wanted:
        return True
    content = ("source", "layout", "rows", "size", "decode", "sha256")
    return (recorded.get("source") == wanted.get("source") == "files"
            and all(recorded.get(k) == wanted.get(k) for k in content))


def unpaired(manifest: Mapping[str, Any]) -> list[str]:
    """The settings ("fog/3") whose images are other photographs than the clean ones, row for row."""
    return [name for name, entry in manifest.get(KEY, {}).items() if entry.get(PAIRED) is False]


def read(root: str | Path) -> dict[str, dict[str, Any]]:
    """The store's provenance records ({} for a store written before they existed)."""
    return dict(reader.read_manifest(root).get(KEY, {}))


def check(root: str | Path, wanted: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ProvenanceConflict when a setting of `wanted` is recorded with other pixels (reads only)."""
    _refuse_conflicts(Path(root), read(root), wanted)


def _refuse_conflicts(root: Path, recorded: Mapping[str, Mapping[str, Any]],
                      wanted: Mapping[str, Mapping[str, Any]]) -> None:
    conflicts = [f"{name}: the store holds images {describe(recorded[name])}; this run would use "
                 f"{describe(entry)}" for name, entry in wanted.items()
                 if name in recorded and not same(recorded[name], entry)]
    if conflicts:
        raise ProvenanceConflict(f"refusing to mix images made another way into {root}: " + "; ".join(conflicts)
                                 + " (use another --store, or the recorded seed and source)")


def _legacy_settings(root: Path) -> set[str]:
    return {key(p["corruption"], p["severity"]) for p in reader.complete_partitions(root)}


def record(root: str | Path, wanted: Mapping[str, Mapping[str, Any]],
           listings: Mapping[str, Listing] | None = None) -> dict[str, dict[str, Any]]:
    """Check `wanted` (key -> record) against the store's records and add the new ones, under the lock.

    Raises ProvenanceConflict, before anything is written, when a setting is recorded with other pixels.
    A files record whose file moved (same rows, same sha256) takes the new path. `listings` (key ->
    Listing) are the file listings of tree settings, written before the manifest names them. Returns
    the records.
    """
    root = Path(root)
    with writer.manifest_update(root) as manifest:
        recorded = dict(manifest.get(KEY, {}))
        _refuse_conflicts(root, recorded, wanted)
        legacy = _legacy_settings(root) if KEY not in manifest else set()
        for name, listing in (listings or {}).items():
            if name not in legacy:
                write_listing(root, name, listing)
        manifest[KEY] = {**recorded, **{name: dict(entry) for name, entry in wanted.items() if name not in legacy}}
        return manifest[KEY]


TRAINING_KEY = "training"


def record_training(root: str | Path, records: Mapping[str, str | None]) -> list[str]:
    """Record each model's training-record digest (manifest `training`: model_id -> digest), under the lock.

    A model the store holds under another digest (or under none: extracted before digests were
    recorded) was trained from another record: its partitions and markers are removed here, so
    extraction computes them from the new checkpoint. Models without a digest (checkpoints from
    elsewhere) are not tracked. Returns the models reset.
    """
    root = Path(root)
    with writer.manifest_update(root) as manifest:
        recorded = dict(manifest.get(TRAINING_KEY, {}))
        reset = sorted(m for m, digest in records.items()
                       if digest and recorded.get(m) != digest and _markers(root, m))
        for model_id in reset:
            _forget_partitions(root, model_id)
        updated = {**recorded, **{m: digest for m, digest in records.items() if digest}}
        if updated != recorded:
            manifest[TRAINING_KEY] = updated
        return reset


def _markers(root: Path, model_id: str) -> list[Path]:
    return sorted((root / layout.COMPLETE).glob(f"{writer.check_model_id(model_id)}__*.json"))


def _forget_partitions(root: Path, model_id: str) -> None:
    """Markers first (the partitions stop counting as complete), then the files."""
    for marker in _markers(root, model_id):
        marker.unlink()
    shutil.rmtree(root / layout.PREDICTIONS / f"model_id={model_id}", ignore_errors=True)
    writer.bump_generation(root)
