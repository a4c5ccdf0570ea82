"""Reading a store without DuckDB: its manifest, where partitions live, which are complete, the classifier
table. The catalog (DuckDB views), the writer and provenance build on these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from store import layout
from store.layout import StoreError


def read_manifest(root: str | Path, *, migrating: bool = False) -> dict[str, Any]:
    """The store's manifest; StoreError naming the file when it is missing, damaged, of another format
    than layout.SCHEMA_VERSION (an older one says to run `compute migrate`) or half-way through a
    migration. `migrating` (for `compute migrate` only) also accepts the formats it converts and an
    interrupted migration."""
    path = Path(root) / layout.MANIFEST
    if not path.is_file():
        raise StoreError(f"{Path(root)} is not a prunescope store: {path} is missing "
                         f"(build one with `python -m compute demo --out {Path(root)}`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{path} is not valid JSON: {error}") from error
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version in layout.MIGRATES_FROM and not migrating:
        raise StoreError(f"{path}: a format-{version} store; convert it to format {layout.SCHEMA_VERSION} with "
                         f"`python -m compute migrate --store {Path(root)}`")
    if version != layout.SCHEMA_VERSION and version not in layout.MIGRATES_FROM:
        raise StoreError(f"{path} has schema version {version!r}; this prunescope reads format "
                         f"{layout.SCHEMA_VERSION} (and migrates format {', '.join(map(str, layout.MIGRATES_FROM))}). "
                         "Rebuild the store with this version.")
    if manifest.get("migrating_to") and not migrating:
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
