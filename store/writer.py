"""Writes a store (layout in store.schema) so that readers never see a partial file and nothing is lost.

Every file is written to a temporary name in `_tmp/`, fsynced, and renamed into place. A prediction
partition counts as complete only once its marker in `_complete/` exists (written after the rename), so
a job killed at any moment and started again rewrites at most the partition it was working on.

Several processes may write one store at once (shards of one extraction, on one machine or many over a
shared file system): they write disjoint partitions, and the few files they share (manifest.json,
models.parquet) are read, changed and replaced under an exclusive lock on `_store.lock`. A temporary
file's name carries the host and process id of its writer, so `clean_tmp` removes what killed writers
left behind without touching a live writer's file. Parquet files carry page checksums, so
`store.verify.verify` finds damaged bytes that a reader would otherwise decode silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store import schema

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class StoreError(ValueError):
    """A store directory is missing, damaged, or written by another schema version."""


TMP = "_tmp"
LOCK = "_store.lock"
STALE_AFTER_S = 24 * 3600.0  # a temporary file this old is abandoned, whoever wrote it
# host.pid.token.name: the writer's host (dots replaced), its process id, a random token, the final name.
_TMP_NAME = re.compile(r"(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{32}\.(?P<name>.+)")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _tmp_path(root: Path, name: str) -> Path:
    tmp_dir = root / TMP
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"{_host()}.{os.getpid()}.{uuid.uuid4().hex}.{name}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _abandoned(path: Path, now: float, max_age_s: float) -> bool:
    """Written by a process of this host that is gone, or older than `max_age_s` (any writer)."""
    try:
        if now - path.stat().st_mtime > max_age_s:
            return True
    except FileNotFoundError:  # its writer just renamed it into place
        return False
    match = _TMP_NAME.fullmatch(path.name)
    return bool(match and match["host"] == _host() and not _pid_alive(int(match["pid"])))


def clean_tmp(root: str | Path, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the temporary files that killed writers left in `_tmp/`; returns what was deleted.

    A file is deleted when its writer was a process of this host that no longer runs, or when it is older
    than `max_age_s` (writers on other hosts of a shared file system, whose processes we cannot see).
    Live writers' files stay, so this is safe while other shards write the same store.
    """
    tmp_dir = Path(root) / TMP
    if not tmp_dir.is_dir():
        return []
    now = time.time()
    removed = []
    for path in sorted(tmp_dir.iterdir()):
        if path.is_file() and _abandoned(path, now, max_age_s):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def locked(root: str | Path) -> Iterator[None]:
    """Hold the store's exclusive lock: read-modify-write of shared files by concurrent writers.

    flock is released by the kernel when its holder dies, so a killed writer never leaves the store locked.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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


@contextlib.contextmanager
def _writing(root: Path, final: Path) -> Iterator[Path]:
    """A temporary path to write `final` to, published on success. On an OS error (full disk, read-only
    store) the temporary file is removed, `final` is left as it was, and the error names `final`."""
    tmp = _tmp_path(root, final.name)
    try:
        yield tmp
        _publish(root, tmp, final)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if error.filename is None:  # pyarrow and file handles name no file; pyarrow puts errno in its text
            number = error.errno or int(next(iter(re.findall(r"\[errno (\d+)\]", str(error))), 0)) or None
            raise OSError(number, os.strerror(number) if number else str(error), str(final)) from error
        raise


def write_parquet(root: Path, table: pa.Table, final: Path) -> int:
    """Write `table` to `final` atomically; returns the file's size in bytes."""
    with _writing(root, final) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, row_group_size=1 << 17,
                       write_page_checksum=True)
    return final.stat().st_size


def write_json(root: Path, payload: dict[str, Any], final: Path) -> None:
    with _writing(root, final) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))


def write_npy(root: Path, array: np.ndarray, final: Path) -> None:
    with _writing(root, final) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The store's manifest; StoreError naming the file when it is missing, damaged or of another version."""
    path = Path(root) / schema.MANIFEST
    if not path.is_file():
        raise StoreError(f"{Path(root)} is not a prunescope store: {path} is missing "
                         f"(build one with `python -m compute demo --out {Path(root)}`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{path} is not valid JSON: {error}") from error
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != schema.SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {version!r}; this prunescope reads version "
                         f"{schema.SCHEMA_VERSION}. Rebuild the store with this version.")
    return manifest


def init_store(root: str | Path, *, dataset: str, class_names: Sequence[str], images: np.ndarray,
               labels: np.ndarray, corruptions: Sequence[str], severities: Sequence[int]) -> Path:
    """Create (or reopen) a store for one dataset's test set. Reopening checks it is the same study.

    Runs under the store's lock, so shards starting together create the store once.
    """
    with locked(root):
        return _init_store(Path(root), dataset=dataset, class_names=class_names, images=images, labels=labels,
                           corruptions=corruptions, severities=severities)


def _init_store(root: Path, *, dataset: str, class_names: Sequence[str], images: np.ndarray,
                labels: np.ndarray, corruptions: Sequence[str], severities: Sequence[int]) -> Path:
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
    """Add or replace rows of models.parquet by model_id (other models are kept).

    A row without clean_accuracy gets it from the model's clean partition when that is complete. Both
    happen under the store's lock, so shards that finish in any order leave the same models.parquet: a
    shard that did not extract the clean partition writes None only while its owner has not finished,
    and the owner's upsert comes later. Checkpoint paths are recorded relative to the store when inside it
    (store.confine.record_checkpoint), so readers resolve them only there.
    """
    from store.confine import record_checkpoint  # confine imports StoreError from here

    root = Path(root)
    path = root / schema.MODELS
    rows = [{**row, "checkpoint": record_checkpoint(root, row.get("checkpoint"))} for row in rows]
    with locked(root):
        existing = pq.read_table(path).to_pylist() if path.exists() else []
        new_ids = {row["model_id"] for row in rows}
        filled = [row if row.get("clean_accuracy") is not None
                  else {**row, "clean_accuracy": clean_accuracy(root, row["model_id"])} for row in rows]
        merged = [row for row in existing if row["model_id"] not in new_ids] + filled
        table = pa.Table.from_pylist(merged, schema=schema.MODEL_SCHEMA)
        write_parquet(root, table, path)


def clean_accuracy(root: str | Path, model_id: str) -> float | None:
    """Accuracy of `model_id` on clean images, from its clean partition; None while that is incomplete."""
    if not is_complete(root, model_id, schema.CLEAN, 0):
        return None
    correct = pq.read_table(partition_file(root, model_id, schema.CLEAN, 0), columns=["correct"])
    return float(np.mean(correct.column("correct").to_numpy()))


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


def prediction_files(root: str | Path) -> list[Path]:
    """Every published prediction file of the store, sorted (model, corruption, severity)."""
    return sorted((Path(root) / schema.PREDICTIONS).glob("*/*/*/*.parquet"))


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
    write_json(root, {"rows": table.num_rows, "bytes": size, **partition_summary(table)},
               _marker(root, model_id, corruption, severity))
    return size


def partition_summary(table: pa.Table) -> dict[str, Any]:
    """What the evaluation matrix needs of a partition: correct count, finite-row count, metric sums.

    Sums run over rows whose values are all finite (the `finite` column), as the matrix's means do.
    """
    finite = table.column("finite")
    kept = table.filter(finite)
    return {
        "correct": int(pc.sum(table.column("correct").cast(pa.int64())).as_py() or 0),
        "finite": kept.num_rows,
        "sums": {name: float(pc.sum(kept.column(name).cast(pa.float64())).as_py() or 0.0)
                 for name in schema.SUMMARY_METRICS},
    }


def summarize_markers(root: str | Path) -> int:
    """Add the evaluation-matrix sums to markers written before they existed; returns how many changed.

    Only existing markers are refreshed (a file without a marker stays incomplete).
    """
    root = Path(root)
    changed = 0
    for marker in complete_partitions(root):
        if "sums" in marker:
            continue
        keys = {k: marker[k] for k in ("model_id", "corruption", "severity")}
        columns = ["correct", "finite", *schema.SUMMARY_METRICS]
        table = pq.read_table(partition_file(root, **keys), columns=columns)
        write_json(root, {"rows": marker["rows"], "bytes": marker["bytes"], **partition_summary(table)},
                   _marker(root, **keys))
        changed += 1
    return changed


def complete_partitions(root: str | Path) -> list[dict[str, Any]]:
    """Every complete partition's (model_id, corruption, severity, rows, bytes), from the markers."""
    out = []
    for marker in sorted((Path(root) / schema.COMPLETE).glob("*.json")):
        model_id, corruption, severity = marker.stem.rsplit("__", 2)
        out.append({"model_id": model_id, "corruption": corruption, "severity": int(severity),
                    **json.loads(marker.read_text())})
    return out
