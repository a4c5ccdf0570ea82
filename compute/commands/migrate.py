"""Rewrite a format-1 store as format 2, in place, atomically per partition and resumably; fill the base
of models written before model cards.

Format 1 kept every class's angle and logit in each row; format 2 keeps the logits of all classes up
to a threshold (else the top-k by logit and the true class), stores each model's classifier norms and
biases once, and derives the rest. Format-1 files do not record the classifier, so |W_c| and b_c are
fitted per class from the model's clean partition: logit_c = |W_c| (|x| cos θ_c) + b_c is linear in
|x| cos θ_c across rows, and a least-squares line through every finite row gives both (to float32
precision). Every partition is then rewritten through the store's atomic publish; the manifest says
`migrating_to: 2` until the last one is done, and the store refuses to open meanwhile. A killed run,
started again, skips the partitions already rewritten and ends with the same store. Last, every model row
written before model cards (no loader, no base) gets the base it was compared with then, written once into
models.parquet (store.bases), so the catalog only reads `base`; a format-2 store of that age needs only this.

Example:
    python -m compute migrate --store data/old-study
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from compute import geometry
from store import bases, layout, reader, writer

HELP = "rewrite a format-1 store as format 2 (atomic per partition, resumable); fill old models' bases"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory (format 1, or a half-migrated one)")
    parser.add_argument("--all-classes-up-to", type=int, default=layout.PerClass.all_up_to,
                        help="keep every class's logit when the study has at most this many classes")
    parser.add_argument("--top-k", type=int, default=layout.PerClass.top_k,
                        help="above that: keep the top-k classes by logit, plus the true class")


def fit_classifier(table: pa.Table, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, (|W_c|, b_c) fitted by least squares to logit_c = |W_c| (|x| cos θ_c) + b_c over the
    finite rows of a format-1 table."""
    angles = np.stack(table.column("angles").to_numpy(zero_copy_only=False)).astype(np.float64)
    logits = np.stack(table.column("logits").to_numpy(zero_copy_only=False)).astype(np.float64)
    length = table.column("feature_norm").to_numpy().astype(np.float64)
    rows = table.column("finite").to_numpy(zero_copy_only=False) & (length > 0)
    u = length[rows, None] * np.cos(np.deg2rad(angles[rows]))
    y = logits[rows]
    if len(u) < 2:
        raise layout.StoreError(f"cannot fit the classifier from {len(u)} finite rows; rebuild the store instead")
    u_mean, y_mean = u.mean(axis=0), y.mean(axis=0)
    variance = ((u - u_mean) ** 2).mean(axis=0)
    slope = np.where(variance > 0, ((u - u_mean) * (y - y_mean)).mean(axis=0) / np.maximum(variance, 1e-300), 1.0)
    return slope, y_mean - slope * u_mean


def convert(table: pa.Table, per_class: layout.PerClass) -> pa.Table:
    """A format-1 partition table as format 2 (the same rows; logits of the classes `per_class` keeps)."""
    logits = torch.from_numpy(np.stack(table.column("logits").to_numpy(zero_copy_only=False)).astype(np.float32))
    labels = torch.from_numpy(table.column("label").to_numpy().astype(np.int64))
    classes, kept = geometry.stored_classes(logits, labels, per_class.all_up_to, per_class.top_k)
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in layout.STORED_COLUMNS}
    return writer.prediction_table(columns, classes.numpy(), logits.gather(1, classes).numpy(), kept.numpy())


def _keys(root: Path, path: Path) -> dict[str, str]:
    return dict(part.split("=", 1) for part in path.relative_to(root / layout.PREDICTIONS).parts[:3])


def migrate(root: str | Path, per_class: layout.PerClass, progress: bool = True) -> int:
    """Rewrite the store at `root` as format 2; returns how many partitions this run rewrote."""
    root = Path(root)
    with writer.manifest_update(root, migrating=True) as manifest:
        if manifest["schema_version"] == layout.SCHEMA_VERSION and not manifest.get("migrating_to"):
            return 0
        if not manifest.get("migrating_to"):
            manifest.update(migrating_to=layout.SCHEMA_VERSION, per_class=dataclasses.asdict(per_class))
    per_class = layout.PerClass.of(manifest)  # a resumed run keeps the rule it started with
    writer.clean_tmp(root)
    files = reader.prediction_files(root)
    by_model: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        by_model[_keys(root, path)["model_id"]].append(path)
    known = set(reader.read_classifiers(root).column("model_id").to_pylist())
    fits = {}
    for model_id, paths in by_model.items():
        if model_id not in known:  # every file is still format 1: classifiers are written before any file
            clean = [p for p in paths if _keys(root, p)["corruption"] == layout.CLEAN] or paths
            fits[model_id] = fit_classifier(reader.read_table(clean[0]), int(manifest["num_classes"]))
    if fits:
        writer.upsert_classifiers(root, fits)
    rewritten = 0
    for path in tqdm(files, desc="migrate", unit="part", disable=not progress):
        keys = _keys(root, path)
        marker = reader.marker_path(root, keys["model_id"], keys["corruption"], int(keys["severity"]))
        summary = None
        if reader.file_version(path) == 1:
            old = reader.read_table(path)
            if marker.is_file() and "sums" not in reader.read_json(marker):
                summary = writer.partition_summary({n: old.column(n).to_numpy(zero_copy_only=False)
                                                    for n in ("correct", "finite", *layout.SUMMARY_METRICS)})
            writer.write_parquet(root, convert(old, per_class), path)
            writer.bump_generation(root)
            rewritten += 1
        if marker.is_file():  # the marker follows its file (also after a run killed between the two)
            recorded = reader.read_json(marker)
            size = path.stat().st_size
            if recorded.get("bytes") != size or summary is not None:
                writer.write_json(root, {**recorded, **(summary or {}), "bytes": size}, marker)
    with writer.manifest_update(root, migrating=True) as manifest:
        manifest.pop("migrating_to", None)
        manifest["schema_version"] = layout.SCHEMA_VERSION
    return rewritten


def run(args: argparse.Namespace) -> int:
    per_class = layout.PerClass(args.all_classes_up_to, args.top_k)
    rewritten = migrate(args.store, per_class)
    filled = bases.fill(args.store)  # rows written before model cards (store.bases)
    print(f"{args.store}: format {layout.SCHEMA_VERSION}, {rewritten} partitions rewritten, {filled} model bases filled")
    return 0
