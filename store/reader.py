"""Reading a store without DuckDB: its manifest, where partitions live, which are complete, the classifier
table (the catalog (DuckDB views) and the writer build on these); and `image`, the pixels the models saw.

`image(store_dir, sample_id, corruption, severity)` returns exactly the pixels extraction fed the models,
following the setting's provenance record (store/provenance.py): the clean images from the store's copy,
published files from the recorded path after checking the recorded sha256, generated settings
regenerated with compute.corruptions only when its implementation version and the seed match the record.
A setting read from a folder tree (Tiny-ImageNet-C, ImageNet-C, an image folder) is served from the one
file the sample was read from: its key from the setting's listing, its bytes checked against the listed
sha256, decoded by the dataset's rule (compute.datasets.folders.decode_copy). When it cannot, it raises StoreError saying why (file moved or changed, other implementation, no record).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from store import layout
from store.layout import StoreError


def read_manifest(root: str | Path, *, migrating_ok: bool = False) -> dict[str, Any]:
    """The store's manifest; StoreError naming the file when it is missing, damaged, of a version this
    prunescope cannot read, or half-way through `compute migrate` (unless `migrating_ok`)."""
    path = Path(root) / layout.MANIFEST
    if not path.is_file():
        raise StoreError(f"{Path(root)} is not a prunescope store: {path} is missing "
                         f"(build one with `python -m compute demo --out {Path(root)}`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{path} is not valid JSON: {error}") from error
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version not in layout.READABLE_VERSIONS:
        raise StoreError(f"{path} has schema version {version!r}; this prunescope reads versions "
                         f"{', '.join(map(str, layout.READABLE_VERSIONS))}. Rebuild the store with this version.")
    if manifest.get("migrating_to") and not migrating_ok:
        raise StoreError(f"{path}: a migration to format {manifest['migrating_to']} was interrupted; finish it "
                         f"with `python -m compute migrate --store {Path(root)}`")
    return manifest


def partition_dir(root: str | Path, model_id: str, corruption: str, severity: int) -> Path:
    return (Path(root) / layout.PREDICTIONS / f"model_id={model_id}" / f"corruption={corruption}"
            / f"severity={severity}")


def partition_file(root: str | Path, model_id: str, corruption: str, severity: int) -> Path:
    return partition_dir(root, model_id, corruption, severity) / "part-0.parquet"


def prediction_files(root: str | Path) -> list[Path]:
    """Every published prediction file of the store, sorted (model, corruption, severity)."""
    return sorted((Path(root) / layout.PREDICTIONS).glob("*/*/*/*.parquet"))


def marker_path(root: str | Path, model_id: str, corruption: str, severity: int) -> Path:
    return Path(root) / layout.COMPLETE / f"{model_id}__{corruption}__{severity}.json"


def is_complete(root: str | Path, model_id: str, corruption: str, severity: int) -> bool:
    """True when the partition's marker exists and its file holds the recorded number of rows."""
    marker = marker_path(root, model_id, corruption, severity)
    part = partition_file(root, model_id, corruption, severity)
    if not (marker.is_file() and part.is_file()):
        return False
    try:
        recorded = json.loads(marker.read_text())["rows"]
        return pq.ParquetFile(part).metadata.num_rows == recorded
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return False


def complete_partitions(root: str | Path) -> list[dict[str, Any]]:
    """Every complete partition's (model_id, corruption, severity, rows, bytes, sums), from the markers."""
    out = []
    for marker in sorted((Path(root) / layout.COMPLETE).glob("*.json")):
        model_id, corruption, severity = marker.stem.rsplit("__", 2)
        out.append({"model_id": model_id, "corruption": corruption, "severity": int(severity),
                    **json.loads(marker.read_text())})
    return out


def clean_accuracy(root: str | Path, model_id: str) -> float | None:
    """Accuracy of `model_id` on clean images, from its clean partition; None while that is incomplete."""
    if not is_complete(root, model_id, layout.CLEAN, 0):
        return None
    marker = json.loads(marker_path(root, model_id, layout.CLEAN, 0).read_text())
    if "correct" in marker:
        return marker["correct"] / max(marker["rows"], 1)
    correct = pq.read_table(partition_file(root, model_id, layout.CLEAN, 0), columns=["correct"])
    return float(np.mean(correct.column("correct").to_numpy()))


def file_version(path: str | Path) -> int:
    """The format of one prediction file, from its columns (format 2 has `classes`)."""
    return 2 if "classes" in pq.read_schema(path).names else 1


def read_classifiers(root: str | Path) -> pa.Table:
    """classifiers.parquet (empty when the store has none yet, e.g. format 1)."""
    path = Path(root) / layout.CLASSIFIERS
    return pq.read_table(path) if path.exists() else layout.CLASSIFIER_SCHEMA.empty_table()


# --- Images the models saw -----------------------------------------------------------------------------


def image(store_dir: str | Path, sample_id: int, corruption: str, severity: int) -> np.ndarray:
    """One sample as the models saw it in one setting: uint8 (H, W, 3); StoreError when that is impossible."""
    root = Path(store_dir)
    from store import provenance  # provenance writes through store.writer, which imports this module

    manifest = read_manifest(root)
    sample_id, severity = int(sample_id), int(severity)
    if not 0 <= sample_id < int(manifest["num_samples"]):
        raise StoreError(f"sample {sample_id} is not in {root} (it holds samples 0..{manifest['num_samples'] - 1})")
    name = provenance.key(corruption, severity)
    entry = manifest.get(provenance.KEY, {}).get(name)
    if corruption == layout.CLEAN and entry is None:  # older stores: clean.npy is what extraction read
        entry = {"source": "stored", "path": f"{layout.IMAGES}/clean.npy"}
    if entry is None:
        raise StoreError(f"{root} records no provenance for {name} (written before prunescope recorded how "
                         "images were made), so the pixels its models saw cannot be told; extract it again "
                         "into a new store to see them")
    source = entry.get("source")
    if source == "generated":
        return _generated(root, name, entry, sample_id, corruption, severity)
    if source == "files" and entry.get("layout") == "folders":
        return _from_tree(root, name, entry, sample_id)
    if source in ("files", "stored"):
        path = Path(entry["path"]) if source == "files" else root / entry["path"]
        rows = entry.get("rows") or [0, int(manifest["num_samples"])]
        return np.array(_verified_rows(path, name, rows[0], rows[1], entry.get("sha256"))[sample_id])
    raise StoreError(f"{root}/{layout.MANIFEST}: provenance of {name} has unknown source {source!r}")


def _generated(root: Path, name: str, entry: dict[str, Any], sample_id: int, corruption: str,
               severity: int) -> np.ndarray:
    from compute import corruptions  # torch: only when a generated image is asked for

    if entry.get("implementation") != corruptions.IMPLEMENTATION:
        raise StoreError(f"{name} was generated by compute.corruptions {entry.get('implementation')}; this "
                         f"prunescope has {corruptions.IMPLEMENTATION}, whose pixels differ, so the images "
                         "the models saw cannot be regenerated")
    clean = root / layout.IMAGES / "clean.npy"
    if not clean.is_file():
        raise StoreError(f"{clean} is missing: the clean images {name} is generated from")
    stat = clean.stat()
    return _regenerate(str(clean), stat.st_mtime_ns, stat.st_size, sample_id, corruption, severity,
                       int(entry["seed"])).copy()


@functools.lru_cache(maxsize=4096)
def _regenerate(clean: str, mtime_ns: int, size: int, sample_id: int, corruption: str, severity: int,
                seed: int) -> np.ndarray:
    from compute import corruptions

    images = np.load(clean, mmap_mode="r")
    return corruptions.corrupt(np.array(images[sample_id:sample_id + 1]), corruption, severity, seed=seed,
                               sample_ids=np.array([sample_id]))[0]


def _verified_rows(path: Path, name: str, start: int, stop: int, sha256: str | None) -> np.ndarray:
    """Rows start:stop of a .npy file, memory-mapped, once their sha256 matched the record."""
    if not path.is_file():
        raise StoreError(f"{path}, the file the models read for {name}, is missing: it was moved or deleted "
                         "since extraction (put it back at that path to see these images)")
    stat = os.stat(path)
    return _checked(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino, name, start, stop, sha256)


@functools.lru_cache(maxsize=64)
def _checked(path: str, mtime_ns: int, size: int, inode: int, name: str, start: int, stop: int,
             sha256: str | None) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise StoreError(f"{path}, the file the models read for {name}, cannot be read: {error}") from error
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 4 or len(array) < stop:
        shape = getattr(array, "shape", None)
        raise StoreError(f"{path}, the file the models read for {name}, is not what extraction read: it holds "
                         f"{getattr(array, 'dtype', '?')} of shape {shape}, not uint8 images (N, H, W, 3) with rows "
                         f"{start}:{stop}")
    rows = array[start:stop]
    if sha256 is not None:
        from store import provenance

        found = provenance.sha256(rows)
        if found != sha256:
            raise StoreError(f"{path}, the file the models read for {name}, changed since extraction: rows "
                             f"{start}:{stop} have sha256 {found[:12]}, the store recorded {sha256[:12]}")
    return rows


def _from_tree(root: Path, name: str, entry: dict[str, Any], sample_id: int) -> np.ndarray:
    """The one file sample `sample_id` was read from, checked against its listed sha256, decoded as then."""
    from compute.datasets import DataError, folders  # PIL/torchvision: only when such an image is asked for
    from store import provenance

    listing = provenance.read_listing(root, name, entry["sha256"])
    if sample_id >= len(listing.keys):
        raise StoreError(f"{provenance.listing_path(root, name)} lists {len(listing.keys)} files for {name}, "
                         f"not sample {sample_id}")
    path = Path(entry["path"]) / listing.keys[sample_id]
    if not path.is_file():
        raise StoreError(f"{path}, the file the models read for {name}, is missing: it was moved or deleted "
                         "since extraction (put it back at that path to see this image)")
    found = provenance.file_sha256(path)
    if found != listing.digests[sample_id]:
        raise StoreError(f"{path}, the file the models read for {name}, changed since extraction: sha256 "
                         f"{found[:12]}, the store recorded {listing.digests[sample_id][:12]}")
    try:
        return np.array(folders.decode_copy(path, int(entry["size"]), folders.rule(entry.get("decode"))))
    except DataError as error:
        raise StoreError(f"{path}, the file the models read for {name}, cannot be decoded: {error}") from error
