"""Writes a store (layout in store.layout) so that readers never see a partial file and nothing is lost.

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
import copy
import dataclasses
import fcntl
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store import layout, reader, vocabulary
from store.confine import record_path
from store.layout import StoreError

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


_HELD = threading.local()  # the stores whose lock this thread holds: `locked` inside `locked` nests


@contextlib.contextmanager
def locked(root: str | Path) -> Iterator[None]:
    """Hold the store's exclusive lock: read-modify-write of shared files by concurrent writers.

    flock is released by the kernel when its holder dies, so a killed writer never leaves the store locked.
    A thread already holding the lock of `root` nests (flock on a second descriptor would wait for itself).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    held = _HELD.__dict__.setdefault("roots", set())
    key = str(root.resolve())
    if key in held:
        yield
        return
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        yield
    finally:
        held.discard(key)
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> None:
    """fsync `tmp`, then rename it to `final` atomically (same file system)."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


@contextlib.contextmanager
def atomically(final: str | Path, root: str | Path | None = None) -> Iterator[Path]:
    """A temporary path to write `final` to, fsynced and renamed into place on success, so a reader never
    sees half a file. Store files (`root` given) are written in the store's `_tmp/`, named by host and
    process so `clean_tmp` can remove what a killed writer left; other files (checkpoints, published
    layouts) beside `final`. On an OS error (full disk, read-only directory) the temporary file is
    removed, `final` is left as it was, and the error names `final`."""
    final = Path(final)
    if root is not None:
        tmp = _tmp_path(Path(root), final.name)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        _publish(tmp, final)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if error.filename is None:  # pyarrow and file handles name no file; pyarrow puts errno in its text
            number = error.errno or int(next(iter(re.findall(r"\[errno (\d+)\]", str(error))), 0)) or None
            raise OSError(number, os.strerror(number) if number else str(error), str(final)) from error
        raise


ROW_GROUP = 1 << 17
_PARQUET = {"compression": "zstd", "compression_level": 3, "write_page_checksum": True}


def write_parquet(root: Path, table: pa.Table, final: Path) -> int:
    """Write `table` to `final` atomically; returns the file's size in bytes."""
    with atomically(final, root) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP, **_PARQUET)
    return final.stat().st_size


def write_parquet_batches(root: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch], final: Path) -> int:
    """Write a stream of record batches (a table too large to hold at once) to `final` atomically, in row
    groups of at most ROW_GROUP rows, as write_parquet; returns the number of rows written."""
    rows = 0
    with atomically(final, root) as tmp, pq.ParquetWriter(tmp, schema, **_PARQUET) as parquet:
        for batch in batches:
            parquet.write_table(pa.Table.from_batches([batch], schema), row_group_size=ROW_GROUP)
            rows += batch.num_rows
    return rows


def write_json(root: Path, payload: dict[str, Any], final: Path) -> None:
    with atomically(final, root) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))


def write_npy(root: Path, array: np.ndarray, final: Path) -> None:
    with atomically(final, root) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


@contextlib.contextmanager
def manifest_update(root: str | Path, *, migrating: bool = False) -> Iterator[dict[str, Any]]:
    """The one way to change manifest.json: under the store's lock, read it (reader.read_manifest;
    `migrating` as there), let the caller change the yielded dict in place, and write it atomically when
    it changed (not at all when the caller raises). Every writer of the manifest goes through here."""
    root = Path(root)
    with locked(root):
        manifest = reader.read_manifest(root, migrating=migrating)
        before = copy.deepcopy(manifest)
        yield manifest
        if manifest != before:
            write_json(root, manifest, root / layout.MANIFEST)
            _LISTED.pop(str(root.resolve()), None)


def init_store(root: str | Path, *, dataset: str, class_names: Sequence[str], images: np.ndarray,
               labels: np.ndarray, corruptions: Sequence[str], severities: Sequence[int],
               per_class: layout.PerClass | None = None) -> Path:
    """Create (or reopen) a store for one dataset's test set. Reopening checks it is the same study.

    `per_class` (default PerClass()) is recorded in a new store's manifest; reopening a store with a
    different one is refused (its rows would follow another rule). A format-1 store is refused: new
    partitions are written in format 2 (`python -m compute migrate` converts the old ones first).
    Runs under the store's lock, so shards starting together create the store once.
    """
    with locked(root):
        return _init_store(Path(root), dataset=dataset, class_names=class_names, images=images, labels=labels,
                           corruptions=corruptions, severities=severities, per_class=per_class)


def _init_store(root: Path, *, dataset: str, class_names: Sequence[str], images: np.ndarray,
                labels: np.ndarray, corruptions: Sequence[str], severities: Sequence[int],
                per_class: layout.PerClass | None) -> Path:
    if (root / layout.MANIFEST).exists():
        with manifest_update(root) as manifest:  # refuses a format-1 store: migrate it first
            recorded = layout.PerClass.of(manifest)
            if per_class is not None and per_class != recorded:
                raise StoreError(f"{root} keeps per-class values for {recorded}; refusing to add rows kept for "
                                 f"{per_class} (use the store's settings or another --out)")
            if manifest["dataset"] != dataset or manifest["num_samples"] != len(labels):
                raise StoreError(f"{root} holds {manifest['dataset']!r} with {manifest['num_samples']} samples; "
                                 f"refusing to mix in {dataset!r} with {len(labels)} samples (use another --out)")
            _list_settings(manifest, corruptions, severities)
        return root
    samples = pa.table({
        "sample_id": pa.array(np.arange(len(labels)), pa.int32()),
        "label": pa.array(labels, pa.int16()),
        "label_name": pa.array([class_names[int(y)] for y in labels], pa.string()),
        "split": pa.array(["test"] * len(labels), pa.string()),
    }, schema=layout.SAMPLE_SCHEMA)
    write_parquet(root, samples, root / layout.SAMPLES)
    write_npy(root, np.ascontiguousarray(images), root / layout.CLEAN_IMAGES)
    write_json(root, {
        "schema_version": layout.SCHEMA_VERSION,
        "dataset": dataset,
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "num_samples": int(len(labels)),
        "image_size": int(images.shape[1]),
        "corruptions": list(corruptions),
        "severities": sorted(set(int(s) for s in severities)),
        "per_class": dataclasses.asdict(per_class or layout.PerClass()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, root / layout.MANIFEST)
    return root


def _list_settings(manifest: dict[str, Any], corruptions: Sequence[str], severities: Sequence[int]) -> None:
    """Add `corruptions` and `severities` to the manifest's lists (in place, inside manifest_update)."""
    merged = list(dict.fromkeys([*manifest["corruptions"], *corruptions]))
    levels = sorted(set(manifest["severities"]) | {int(s) for s in severities})
    if merged != manifest["corruptions"] or levels != manifest["severities"]:
        manifest.update(corruptions=merged, severities=levels)


# Per store, the manifest file this process last saw (inode, mtime, size) and the settings it lists:
# write_partition reads the manifest again only when the file changed, not once per partition.
_LISTED: dict[str, tuple[tuple[int, int, int], frozenset[str], frozenset[int]]] = {}


def _manifest_stamp(root: Path) -> tuple[int, int, int]:
    stat = (root / layout.MANIFEST).stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _ensure_listed(root: Path, corruption: str, severity: int) -> None:
    """Make the manifest list the setting before a partition of it is published. A setting, once listed,
    stays listed, so a manifest file this process has seen listing it (same inode, mtime and size) still
    does: then nothing is read. Otherwise it is added through manifest_update."""
    key = str(root.resolve())
    seen = _LISTED.get(key)
    if seen and seen[0] == _manifest_stamp(root) and corruption in seen[1] and severity in seen[2]:
        return
    with locked(root):
        # any format this prunescope knows: testkit writes format-1 stores through here to test migrating
        with manifest_update(root, migrating=True) as manifest:
            _list_settings(manifest, [corruption], [severity])
        # the file as written (or left), still under the lock: later partitions of its settings read nothing
        _LISTED[key] = (_manifest_stamp(root), frozenset(manifest["corruptions"]),
                        frozenset(int(s) for s in manifest["severities"]))


def upsert_models(root: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Add or replace rows of models.parquet by model_id (other models are kept).

    A row without clean_accuracy gets it from the model's clean partition when that is complete. Both
    happen under the store's lock, so shards that finish in any order leave the same models.parquet: a
    shard that did not extract the clean partition writes None only while its owner has not finished,
    and the owner's upsert comes later. Checkpoint paths are recorded relative to the store when inside it
    (store.confine.record_path), so readers resolve them only there.
    """
    root = Path(root)
    path = root / layout.MODELS
    rows = [{**row, "checkpoint": record_path(root, row.get("checkpoint"))} for row in rows]
    with locked(root):
        existing = reader.read_table(path).to_pylist() if path.exists() else []
        new_ids = {row["model_id"] for row in rows}
        filled = [row if row.get("clean_accuracy") is not None
                  else {**row, "clean_accuracy": reader.clean_accuracy(root, row["model_id"])} for row in rows]
        merged = [row for row in existing if row["model_id"] not in new_ids] + filled
        table = pa.Table.from_pylist(merged, schema=layout.MODEL_SCHEMA)
        write_parquet(root, table, path)


def check_model_id(model_id: str) -> str:
    """Model ids become directory names: letters, digits, '.', '-' and '_' only (no '__')."""
    if not vocabulary.is_model_id(model_id):
        raise StoreError(f"model id {model_id!r} may only use letters, digits, '.', '-', single '_'")
    return model_id


def upsert_classifiers(root: str | Path, classifiers: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Add or replace, per model id, its classifier's per-class weight norms |W_c| and biases b_c
    (zeros for a layer without bias) in classifiers.parquet; other models are kept. Under the lock."""
    root = Path(root)
    path = root / layout.CLASSIFIERS
    with locked(root):
        existing = reader.read_classifiers(root)
        kept = existing.filter(pc.invert(pc.is_in(existing.column("model_id"), pa.array(list(classifiers)))))
        new = [pa.table({
            "model_id": pa.array([model_id] * len(norms), pa.string()),
            "class": pa.array(np.arange(len(norms)), pa.int16()),
            "weight_norm": pa.array(np.asarray(norms, np.float64)),
            "bias": pa.array(np.asarray(biases, np.float64)),
        }, schema=layout.CLASSIFIER_SCHEMA) for model_id, (norms, biases) in classifiers.items()]
        table = pa.concat_tables([kept.cast(layout.CLASSIFIER_SCHEMA), *new]).sort_by([("model_id", "ascending"),
                                                                                       ("class", "ascending")])
        write_parquet(root, table, path)


def upsert_layers(root: str | Path, layers: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Add or replace, per model id, its rows of layers.parquet (layout.LAYER_SCHEMA without model_id, one
    per prunable layer, as compute.layers computes them); other models' rows are kept. Under the lock, so
    shards that record the same models in any order leave the same file."""
    root = Path(root)
    if not layers:
        return
    for model_id in layers:
        check_model_id(model_id)
    path = root / layout.LAYERS
    with locked(root):
        existing = reader.read_layers(root)
        kept = existing.filter(pc.invert(pc.is_in(existing.column("model_id"), pa.array(list(layers), pa.string()))))
        new = pa.Table.from_pylist([{**row, "model_id": model_id} for model_id, rows in layers.items() for row in rows],
                                   schema=layout.LAYER_SCHEMA)
        table = pa.concat_tables([kept.select(layout.LAYER_SCHEMA.names).cast(layout.LAYER_SCHEMA), new]).sort_by(
            [("model_id", "ascending"), ("position", "ascending")])
        write_parquet(root, table, path)


def prediction_table(columns: Mapping[str, np.ndarray], classes: np.ndarray, logits: np.ndarray,
                     kept: np.ndarray | None = None) -> pa.Table:
    """A format-2 prediction table: layout.STORED_COLUMNS (numpy, one entry per sample in sample order;
    sample_id is the row position) and per-class values, `classes` and `logits` both (N, K), of which
    row i keeps the entries where `kept[i]` (all when None)."""
    target = layout.prediction_schema(0)
    n = len(columns["pred"])
    classes = np.asarray(classes)
    logits = np.asarray(logits, np.float32)
    if classes.shape != logits.shape or classes.shape[0] != n:
        raise StoreError(f"classes {classes.shape} and logits {logits.shape} must both be ({n}, K)")
    kept = np.ones(classes.shape, bool) if kept is None else np.asarray(kept, bool)
    offsets = pa.array(np.concatenate([[0], np.cumsum(kept.sum(axis=1))]).astype(np.int32))
    arrays = {
        "sample_id": pa.array(np.arange(n, dtype=np.int32)),
        "classes": pa.ListArray.from_arrays(offsets, pa.array(classes[kept].astype(np.int16))),
        "logits": pa.ListArray.from_arrays(offsets, pa.array(logits[kept])),
    }
    for f in target:
        if f.name not in arrays:
            arrays[f.name] = pa.array(np.asarray(columns[f.name]).astype(f.type.to_pandas_dtype()), type=f.type)
    return pa.table([arrays[f.name] for f in target], schema=target)


def partition_summary(columns: Mapping[str, Any]) -> dict[str, Any]:
    """What the evaluation matrix needs of a partition: correct count, finite-row count, metric sums.

    `columns` holds the format-1 scalars (numpy arrays or Arrow columns; extraction has them before it
    drops what format 2 derives). Sums run over rows whose values are all finite (the `finite` column),
    as the matrix's means do.
    """
    finite = np.asarray(columns["finite"], bool)
    return {
        "correct": int(np.sum(np.asarray(columns["correct"], bool))),
        "finite": int(finite.sum()),
        "sums": {name: float(np.sum(np.asarray(columns[name], np.float64)[finite]))
                 for name in layout.SUMMARY_METRICS},
    }


def bump_generation(root: str | Path) -> None:
    """Give the store a new generation (layout.GENERATION): called after every change to its prediction files
    (after the file is in place, so a derived file whose record names the old generation is judged by its
    files), which makes every derived file built before it stale without listing a file."""
    write_json(Path(root), {"generation": uuid.uuid4().hex}, Path(root) / layout.GENERATION)


def write_partition(root: str | Path, model_id: str, corruption: str, severity: int, table: pa.Table,
                    summary: dict[str, Any]) -> int:
    """Publish one (model, corruption, severity) partition, then its completion marker with `summary`
    (partition_summary); returns the file's bytes.

    The manifest lists the setting before the partition is renamed into place, so at every moment (a kill
    or a full disk between any two steps) each published partition is of a setting the manifest lists and
    `store.verify.verify` finds the store whole; a partition without its marker is redone by a rerun.
    """
    root = Path(root)
    check_model_id(model_id)
    if corruption != layout.CLEAN:
        _ensure_listed(root, corruption, int(severity))
    size = write_parquet(root, table, reader.partition_file(root, model_id, corruption, severity))
    bump_generation(root)
    write_json(root, {"rows": table.num_rows, "bytes": size, **summary},
               reader.marker_path(root, model_id, corruption, severity))
    return size
