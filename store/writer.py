"""Writes a store (layout in store.schema) so that readers never see a partial file and nothing is lost.

Every file is written to a temporary name in `_tmp/`, fsynced, and renamed into place. A prediction
partition counts as complete only once its marker in `_complete/` exists (written after the rename), so
a job killed at any moment and started again rewrites at most the partition it was working on.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from store import schema

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class StoreError(ValueError):
    """A store directory is missing, damaged, or written by another schema version."""


def _tmp_path(root: Path, name: str) -> Path:
    tmp_dir = root / "_tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"{uuid.uuid4().hex}-{name}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(root: Path, tmp: Path, final: Path) -> None:
    """fsync `tmp`, then rename it to `final` atomically (same file system: both under root)."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def write_parquet(root: Path, table: pa.Table, final: Path) -> int:
    """Write `table` to `final` atomically; returns the file's size in bytes."""
    tmp = _tmp_path(root, final.name)
    pq.write_table(table, tmp, compression="zstd", compression_level=3, row_group_size=1 << 17)
    _publish(root, tmp, final)
    return final.stat().st_size


def write_json(root: Path, payload: dict[str, Any], final: Path) -> None:
    tmp = _tmp_path(root, final.name)
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    _publish(root, tmp, final)


def write_npy(root: Path, array: np.ndarray, final: Path) -> None:
    tmp = _tmp_path(root, final.name)
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    _publish(root, tmp, final)


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The store's manifest; StoreError naming the file when it is missing, damaged or of another version."""
    path = Path(root) / schema.MANIFEST
    if not path.is_file():
        raise StoreError(f"{Path(root)} is not a prunescope store: {path} is missing "
                         f"(build one with `python -m compute demo --out {Path(root)}`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise StoreError(f"{path} is not valid JSON: {error}") from error
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != schema.SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {version!r}; this prunescope reads version "
                         f"{schema.SCHEMA_VERSION}. Rebuild the store with this version.")
    return manifest


def init_store(root: str | Path, *, dataset: str, class_names: Sequence[str], images: np.ndarray,
               labels: np.ndarray, corruptions: Sequence[str], severities: Sequence[int]) -> Path:
    """Create (or reopen) a store for one dataset's test set. Reopening checks it is the same study."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if (root / schema.MANIFEST).exists():
        manifest = read_manifest(root)
        if manifest["dataset"] != dataset or manifest["num_samples"] != len(labels):
            raise StoreError(f"{root} holds {manifest['dataset']!r} with {manifest['num_samples']} samples; "
                             f"refusing to mix in {dataset!r} with {len(labels)} samples (use another --out)")
        merged = list(dict.fromkeys([*manifest["corruptions"], *corruptions]))
        if merged != manifest["corruptions"]:
            manifest["corruptions"] = merged
            write_json(root, manifest, root / schema.MANIFEST)
        return root
    samples = pa.table({
        "sample_id": pa.array(np.arange(len(labels)), pa.int32()),
        "label": pa.array(labels, pa.int16()),
        "label_name": pa.array([class_names[int(y)] for y in labels], pa.string()),
        "split": pa.array(["test"] * len(labels), pa.string()),
    }, schema=schema.SAMPLE_SCHEMA)
    write_parquet(root, samples, root / schema.SAMPLES)
    write_npy(root, np.ascontiguousarray(images), root / schema.IMAGES / "clean.npy")
    write_json(root, {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": dataset,
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "num_samples": int(len(labels)),
        "image_size": int(images.shape[1]),
        "corruptions": list(corruptions),
        "severities": sorted(set(int(s) for s in severities)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, root / schema.MANIFEST)
    return root


def upsert_models(root: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Add or replace rows of models.parquet by model_id (other models are kept)."""
    root = Path(root)
    path = root / schema.MODELS
    existing = pq.read_table(path).to_pylist() if path.exists() else []
    new_ids = {row["model_id"] for row in rows}
    merged = [row for row in existing if row["model_id"] not in new_ids] + list(rows)
    table = pa.Table.from_pylist(merged, schema=schema.MODEL_SCHEMA)
    write_parquet(root, table, path)


def check_model_id(model_id: str) -> str:
    """Model ids become directory names: letters, digits, '.', '-' and '_' only (no '__')."""
    if not MODEL_ID.fullmatch(model_id) or "__" in model_id:
        raise StoreError(f"model id {model_id!r} may only use letters, digits, '.', '-', single '_'")
    return model_id


def _partition_dir(root: Path, model_id: str, corruption: str, severity: int) -> Path:
    return (root / schema.PREDICTIONS / f"model_id={model_id}" / f"corruption={corruption}"
            / f"severity={severity}")


def prediction_table(columns: dict[str, np.ndarray], num_classes: int) -> pa.Table:
    """Geometry columns (numpy, one entry per sample in sample order) -> a table with the explicit schema.

    `angles` and `logits` are (N, C) arrays; sample_id is the row position.
    """
    target = schema.prediction_schema(num_classes)
    n = len(columns["label"])
    arrays = {"sample_id": pa.array(np.arange(n, dtype=np.int32))}
    for f in target:
        if f.name == "sample_id":
            continue
        values = np.asarray(columns[f.name])
        if pa.types.is_fixed_size_list(f.type):
            if values.shape != (n, num_classes):
                raise StoreError(f"column {f.name!r} must have shape ({n}, {num_classes}), got {values.shape}")
            flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
            arrays[f.name] = pa.FixedSizeListArray.from_arrays(flat, num_classes)
        else:
            arrays[f.name] = pa.array(values.astype(f.type.to_pandas_dtype()), type=f.type)
    return pa.table([arrays[f.name] for f in target], schema=target)


def partition_file(root: str | Path, model_id: str, corruption: str, severity: int) -> Path:
    return _partition_dir(Path(root), model_id, corruption, severity) / "part-0.parquet"


def _marker(root: Path, model_id: str, corruption: str, severity: int) -> Path:
    return root / schema.COMPLETE / f"{model_id}__{corruption}__{severity}.json"


def is_complete(root: str | Path, model_id: str, corruption: str, severity: int) -> bool:
    """True when the partition's marker exists and its file holds the recorded number of rows."""
    root = Path(root)
    marker = _marker(root, model_id, corruption, severity)
    part = partition_file(root, model_id, corruption, severity)
    if not (marker.is_file() and part.is_file()):
        return False
    try:
        recorded = json.loads(marker.read_text())["rows"]
        return pq.ParquetFile(part).metadata.num_rows == recorded
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return False


def write_partition(root: str | Path, model_id: str, corruption: str, severity: int, table: pa.Table) -> int:
    """Publish one (model, corruption, severity) partition, then its completion marker; returns bytes."""
    root = Path(root)
    check_model_id(model_id)
    final = partition_file(root, model_id, corruption, severity)
    size = write_parquet(root, table, final)
    write_json(root, {"rows": table.num_rows, "bytes": size}, _marker(root, model_id, corruption, severity))
    return size


def complete_partitions(root: str | Path) -> list[dict[str, Any]]:
    """Every complete partition's (model_id, corruption, severity, rows, bytes), from the markers."""
    out = []
    for marker in sorted((Path(root) / schema.COMPLETE).glob("*.json")):
        model_id, corruption, severity = marker.stem.rsplit("__", 2)
        out.append({"model_id": model_id, "corruption": corruption, "severity": int(severity),
                    **json.loads(marker.read_text())})
    return out
