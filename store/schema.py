"""The store's public format: file names, Arrow schemas and the columns a user may filter on.

A store is one directory holding one study (a dataset and its models):

    manifest.json                      schema version, dataset, class names, image size, corruptions
    samples.parquet                    one row per test sample
    models.parquet                     one row per model
    images/clean.npy                   uint8 (N, H, W, 3) test images, for drill-down
    images/provenance/C_S.parquet      per image file read for setting C/S from a folder tree: key, sha256
    predictions/model_id=M/corruption=C/severity=S/part-0.parquet
    _complete/                         one JSON marker per complete partition (row count, bytes)
    embeddings/models.parquet          2-D coordinates of each model's geometry vector (compute embed)
    embeddings/mst.parquet             minimum spanning tree over the model vectors
    embeddings/samples.parquet         2-D coordinates of per-sample geometry

Any Parquet engine reads it with hive partitioning; angles are in degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
SAMPLES = "samples.parquet"
MODELS = "models.parquet"
PREDICTIONS = "predictions"
IMAGES = "images"
COMPLETE = "_complete"
CLEAN = "clean"
EMBEDDINGS = "embeddings"
MODEL_EMBEDDING = "models.parquet"  # these three live under EMBEDDINGS
MODEL_TREE = "mst.parquet"
SAMPLE_EMBEDDING = "samples.parquet"
LISTINGS = "provenance"  # under IMAGES: the file listings of settings read from image trees

# Per-partition sums kept in each completion marker (over rows whose values are all finite), so the
# evaluation matrix of any of these metrics needs no scan of the prediction files.
SUMMARY_METRICS = ("angle_true", "feature_norm", "margin", "loss", "confidence", "p_true")

# The partition keys live in the directory names (hive style), not inside the files.
PARTITION_KEYS = ("model_id", "corruption", "severity")


def prediction_schema(num_classes: int) -> pa.Schema:
    """One row per (model, corruption, severity, sample); lists are fixed-size, one entry per class."""
    f32 = pa.float32()
    return pa.schema([
        ("sample_id", pa.int32()),
        ("label", pa.int16()),
        ("pred", pa.int16()),
        ("correct", pa.bool_()),
        ("loss", f32),
        ("confidence", f32),
        ("p_true", f32),
        ("feature_norm", f32),
        ("weight_norm_true", f32),
        ("cos_true", f32),
        ("angle_true", f32),
        ("angle_pred", f32),
        ("angle_nearest_wrong", f32),
        ("margin", f32),
        ("finite", pa.bool_()),
        ("angles", pa.list_(f32, num_classes)),
        ("logits", pa.list_(f32, num_classes)),
    ])


SAMPLE_SCHEMA = pa.schema([
    ("sample_id", pa.int32()),
    ("label", pa.int16()),
    ("label_name", pa.string()),
    ("split", pa.string()),
])

MODEL_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("arch", pa.string()),
    ("method", pa.string()),
    ("target_sparsity", pa.float64()),
    ("sparsity", pa.float64()),
    ("seed", pa.int64()),
    ("num_params", pa.int64()),
    ("num_nonzero", pa.int64()),
    ("checkpoint", pa.string()),
    ("hparams", pa.string()),
    ("clean_accuracy", pa.float64()),
])

# projection: "umap", or "pca" where UMAP could not run (too few points, or it failed).
MODEL_EMBEDDING_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("arch", pa.string()),
    ("method", pa.string()),
    ("target_sparsity", pa.float64()),
    ("x", pa.float32()),
    ("y", pa.float32()),
    ("projection", pa.string()),
])

MODEL_TREE_SCHEMA = pa.schema([
    ("source", pa.string()),
    ("target", pa.string()),
    ("distance", pa.float64()),
])

SAMPLE_EMBEDDING_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("corruption", pa.string()),
    ("severity", pa.int32()),
    ("sample_id", pa.int32()),
    ("label", pa.int16()),
    ("label_name", pa.string()),
    ("correct", pa.bool_()),
    ("x", pa.float32()),
    ("y", pa.float32()),
    ("projection", pa.string()),
])

# Columns a filter expression may name (store.filters): the name and what it means, for the help text.
FILTER_COLUMNS: dict[str, str] = {
    "model_id": "model identifier",
    "arch": "architecture name",
    "method": "pruning method ('dense' for the unpruned model)",
    "target_sparsity": "requested fraction of zero weights",
    "sparsity": "measured fraction of zero weights",
    "seed": "training seed",
    "corruption": "corruption name, or 'clean'",
    "severity": "corruption severity 1..5 (0 for clean)",
    "sample_id": "row of the test set",
    "label": "true class index",
    "label_name": "true class name",
    "pred": "predicted class index",
    "correct": "prediction equals the label",
    "loss": "cross-entropy loss",
    "confidence": "softmax probability of the predicted class",
    "p_true": "softmax probability of the true class",
    "feature_norm": "length of the penultimate feature",
    "weight_norm_true": "length of the true class's weight row",
    "cos_true": "cosine between feature and true class's weight row",
    "angle_true": "angle (degrees) between feature and true class's weight row",
    "angle_pred": "angle (degrees) to the predicted class's weight row",
    "angle_nearest_wrong": "smallest angle (degrees) to a wrong class's weight row",
    "margin": "signed distance to the nearest decision boundary (negative when wrong)",
    "finite": "all geometry values are finite",
    "dense_correct": "the dense model of the same architecture is correct on this sample and setting",
    "dense_feature_norm": "the dense model's feature_norm on this sample and setting",
    "dense_angle_true": "the dense model's angle_true on this sample and setting",
    "dense_margin": "the dense model's margin on this sample and setting",
}


def sql_literal(path: Path) -> str:
    """A file path as an SQL string literal (table functions take no bound parameters in view bodies)."""
    return "'" + str(path).replace("'", "''") + "'"


def read_predictions(files: Sequence[Path]) -> str:
    """DuckDB SQL reading these prediction files with their hive partition keys typed.

    An explicit file list, not a glob: DuckDB would expand a glob again on every query, and on thousands of
    partitions the listing costs as much as the scan.
    """
    listing = "[" + ", ".join(sql_literal(path) for path in files) + "]"
    return (f"read_parquet({listing}, hive_partitioning = true, "
            "hive_types = {'model_id': VARCHAR, 'corruption': VARCHAR, 'severity': INTEGER})")


# images/provenance/<corruption>_<severity>.parquet: the files a setting was read from (store/provenance.py).
LISTING_SCHEMA = pa.schema([
    pa.field("sample_id", pa.int64(), nullable=False),
    pa.field("key", pa.string(), nullable=False),      # <class>/<file>, relative to the recorded tree
    pa.field("sha256", pa.string(), nullable=False),   # hex sha256 of the file's bytes
])
