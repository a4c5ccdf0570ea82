"""The store's public format: file names, Arrow schemas, the format version and the columns a user may filter on.

A store is one directory holding one study (a dataset and its models); format 2 (README "The store (a public
format)"):

    manifest.json                      schema version, dataset, class names, image size, corruptions,
                                       per_class (which classes a row keeps: all up to a threshold, else top-k)
    samples.parquet                    one row per test sample (its label lives here only)
    models.parquet                     one row per model
    classifiers.parquet                per model and class: the weight row's norm and the bias
    layers.parquet                     per model and prunable layer: weights, non-zeros, output channels, norm
    images/clean.npy                   uint8 (N, H, W, 3) test images, for drill-down
    images/provenance/C_S.parquet      per image file read for setting C/S from a folder tree: key, sha256
    predictions/model_id=M/corruption=C/severity=S/part-0.parquet
    _complete/                         one JSON marker per complete partition (row count, bytes, sums)
    embeddings/models.parquet          2-D coordinates of each model's geometry vector (compute embed)
    embeddings/mst.parquet             minimum spanning tree over the model vectors
    embeddings/samples.parquet         2-D coordinates of per-sample geometry
    index/                             derived files, rebuilt by `compute index`: the by-sample index
                                       (by_sample.parquet, by_sample.json) and the pre-aggregates
                                       (<name>.parquet, aggregates.json)

A prediction row keeps the per-sample scalars queries read and the logits of some classes (all up to a
threshold, else the top-k and the true class); the catalog's views derive the rest (correct, p_true,
confidence, cos_true, per-class angles), so queries see every format-1 column. Any Parquet engine reads it with hive partitioning; angles are in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 2
MIGRATES_FROM = (1,)  # formats only `python -m compute migrate` reads (it rewrites them as SCHEMA_VERSION)

MANIFEST = "manifest.json"
SAMPLES = "samples.parquet"
MODELS = "models.parquet"
CLASSIFIERS = "classifiers.parquet"
LAYERS = "layers.parquet"  # optional: a store written before it lacks it (`compute index` adds it)
LAYERS_HINT = f"delete {LAYERS} and run `python -m compute index` to record the layers again from the checkpoints"
PREDICTIONS = "predictions"
IMAGES = "images"
CLEAN_IMAGES = f"{IMAGES}/clean.npy"  # the clean test images, uint8 (N, H, W, 3)
COMPLETE = "_complete"
# {"generation": a random token}: replaced by the writer after every change to the prediction files (store.writer.
# bump_generation), so a derived file's record that names it was built from the files the store holds now.
GENERATION = "_generation.json"
CLEAN = "clean"
EMBEDDINGS = "embeddings"
MODEL_EMBEDDING = "models.parquet"  # these three live under EMBEDDINGS
MODEL_TREE = "mst.parquet"
SAMPLE_EMBEDDING = "samples.parquet"
LISTINGS = "provenance"  # under IMAGES: the file listings of settings read from image trees
# Derived files (store.derived rebuilds them): the by-sample index and the pre-aggregates, under INDEX.
INDEX = "index"
BY_SAMPLE = "by_sample.parquet"  # the by-sample index (store.sample_index)
SERVING = "serving.duckdb"  # the serving copy of every prediction row (store.serving), DuckDB's format
SERVING_PARTIAL = "serving.partial.duckdb"  # the serving copy while it is built (a rerun resumes it)
AGREEMENT = "agreement.parquet"  # every model pair's agreement per setting (analysis.agreement, compute index)
PIE_COUNTS = "pie_counts.parquet"  # per setting, each group's PIE count (analysis.presets.pie_counts)
PRUNING_FRAGILE = "pruning_fragile.parquet"  # per setting, each sample's pruned_wrong (analysis.presets)
SETTING_BINS = "setting_bins.parquet"  # per (model, setting), the local geometry's bins (analysis.queries)
REFERENCE_DELTA_BINS = "reference_delta_bins.parquet"  # the same of each model vs its reference (analysis.queries)
# Each derived file's record (store.derived_record) is INDEX/<name>.json, under these names:
BY_SAMPLE_RECORD = "by_sample"  # the by-sample index
AGGREGATES_RECORD = "aggregates"  # the pre-aggregates (store.aggregates, <name>.parquet)
SERVING_RECORD = "serving"  # the serving copy (store.serving)
AGREEMENT_RECORD = "agreement"  # the per-setting model agreement (analysis.agreement.stored_definition)
PIE_COUNTS_RECORD = "pie_counts"  # the per-setting PIE counts (analysis.presets.stored_definition)
PRUNING_FRAGILE_RECORD = "pruning_fragile"  # the per-setting pruning-fragile samples (analysis.presets)
SETTING_BINS_RECORD = "setting_bins"  # the per-(model, setting) bins (analysis.queries.stored_definition)
REFERENCE_DELTA_BINS_RECORD = "reference_delta_bins"  # each model vs its reference (analysis.queries)
EMBEDDINGS_RECORD = "embeddings"  # the embeddings (compute.embed, under EMBEDDINGS)

# Per-partition sums kept in each completion marker (over rows whose values are all finite), so the
# evaluation matrix of any of these metrics needs no scan of the prediction files.
SUMMARY_METRICS = ("angle_true", "feature_norm", "margin", "loss", "confidence", "p_true")

# The partition keys live in the directory names (hive style), not inside the files.
PARTITION_KEYS = ("model_id", "corruption", "severity")


class StoreError(ValueError):
    """A store directory is missing, damaged, or written by another schema version."""


def images_problem(shape: tuple[int, ...], dtype: np.dtype, count: int | None = None, size: int | None = None,
                   rows: int | None = None) -> str | None:
    """None when an array of `shape` and `dtype` holds images as the store keeps them: uint8 (N, H, W, 3),
    with N = `count` (or at least `rows`) and H = W = `size` where given; else what is wrong, in one message
    for every reader (verify, the pixels a model saw, the dashboard's images)."""
    shape = tuple(int(n) for n in shape)
    wanted = (count, size, size, 3)
    if (np.dtype(dtype) == np.uint8 and len(shape) == 4 and all(w is None or n == w for n, w in zip(shape, wanted, strict=True))
            and (rows is None or shape[0] >= rows)):
        return None
    expected = ", ".join(str(w) if w is not None else d for w, d in zip(wanted, ("N", "H", "W", "3"), strict=True))
    at_least = f" with at least {rows} rows" if rows is not None else ""
    return f"holds dtype {dtype} of shape {shape}, expected ({expected}) uint8 images{at_least}"


@dataclass(frozen=True)
class PerClass:
    """Which classes a prediction row keeps logits for: every class when the study has at most
    `all_up_to` classes, otherwise the `top_k` classes with the largest logits plus the true class.
    Recorded in the manifest as `per_class`."""

    all_up_to: int = 20
    top_k: int = 10

    def __post_init__(self) -> None:
        if self.all_up_to < 1 or self.top_k < 1:
            raise StoreError(f"per-class settings must be positive, got all_up_to={self.all_up_to}, "
                             f"top_k={self.top_k}")

    @classmethod
    def of(cls, manifest: dict) -> PerClass:
        """The manifest's rule (the default for a format-1 manifest, which kept every class)."""
        return cls(**manifest.get("per_class", {}))

    def keeps_all(self, num_classes: int) -> bool:
        return num_classes <= self.all_up_to


# Scalar columns of format 1, in its order: the prediction views expose exactly these in every format.
SCALAR_COLUMNS = ("sample_id", "label", "pred", "correct", "loss", "confidence", "p_true", "feature_norm",
                  "weight_norm_true", "cos_true", "angle_true", "angle_pred", "angle_nearest_wrong", "margin",
                  "finite")
# What a format-2 prediction file stores; the rest of SCALAR_COLUMNS (correct, confidence, p_true,
# cos_true) is derived by the catalog. label, weight_norm_true, angle_true and angle_pred are derivable too
# (samples.parquet; the classifier table and the logits) but stored: queries read them everywhere, and
# deriving them costs a join per row or a decode of the logit list (1.2-10x the CPU: bench queries, README).
STORED_COLUMNS = ("sample_id", "label", "pred", "loss", "feature_norm", "weight_norm_true", "angle_true",
                  "angle_pred", "angle_nearest_wrong", "margin", "finite")


def prediction_schema(num_classes: int, version: int = SCHEMA_VERSION) -> pa.Schema:
    """One row per (model, corruption, severity, sample) in a file of format `version`.

    Format 2: STORED_COLUMNS, then `classes` (class indices, ascending when every
    class is kept, else by logit, largest first, then the true class) and `logits` (the same classes'
    logits). Format 1: every scalar, then fixed-size `angles` and `logits` with one entry per class.
    """
    f32 = pa.float32()
    if version == 2:
        return pa.schema([
            ("sample_id", pa.int32()),
            ("label", pa.int16()),
            ("pred", pa.int16()),
            ("loss", f32),
            ("feature_norm", f32),
            ("weight_norm_true", f32),
            ("angle_true", f32),
            ("angle_pred", f32),
            ("angle_nearest_wrong", f32),
            ("margin", f32),
            ("finite", pa.bool_()),
            ("classes", pa.list_(pa.int16())),
            ("logits", pa.list_(f32)),
        ])
    if version != 1:
        raise StoreError(f"no prediction schema for format {version}; known: {(*MIGRATES_FROM, SCHEMA_VERSION)}")
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


# Per model and class: |W_c| and b_c of the final linear layer (bias 0 for a layer without one).
CLASSIFIER_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("class", pa.int16()),
    ("weight_norm", pa.float64()),
    ("bias", pa.float64()),
])


# Per model and prunable layer (every nn.Conv2d and nn.Linear, the classifier included, int8 ones
# dequantized), in the order the network holds them: what pruning left of each layer's weight tensor
# (compute.layers). `layer` is the module's name in the model (`body.4`, `classifier`), so a model and its
# base line up by name; `kind` is "conv" or "linear"; `num_weights` and `num_nonzero` count the weight
# tensor's elements and its non-zero ones (biases excluded: pruning zeroes weights); `out_channels` is the
# layer's output channels (a convolution's filters, a linear layer's outputs) and `live_out_channels` those
# with at least one non-zero weight; `weight_norm` is the weight tensor's L2 (Frobenius) norm. Channels
# kept against a model's reference are the catalog's `layers` view (live_out_channels over the
# reference's out_channels of the same layer), not stored.
LAYER_KINDS = ("conv", "linear")
LAYER_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("layer", pa.string()),
    ("position", pa.int32()),
    ("kind", pa.string()),
    ("num_weights", pa.int64()),
    ("num_nonzero", pa.int64()),
    ("out_channels", pa.int32()),
    ("live_out_channels", pa.int32()),
    ("weight_norm", pa.float64()),
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
    ("base", pa.string()),
    ("loader", pa.string()),
    ("operation", pa.string()),
    ("file_bytes", pa.int64()),
    ("latency_ms_batch1", pa.float64()),
    ("latency_ms_batch256", pa.float64()),
    ("latency_threads", pa.int64()),
    ("latency_load_average", pa.float64()),
])
# The model card's columns added within format 2 (nullable): a store written before them lacks them, and
# readers take them as null (`compute migrate` fills the base of such rows once: store.bases).
# `base` is the model_id this model was derived from (null for one derived from nothing in the store);
# `loader` says how the model is loaded again, as JSON: {"kind": "checkpoint"} (a prunescope checkpoint,
# the `checkpoint` column), {"kind": "module", "function": "package.module:function", "normalize": ...}
# (the `checkpoint` column holds its weights, or null) or {"kind": "robustbench", "name": ..., "dataset":
# ..., "threat_model": ...}. `seed` is null for a model whose seed nobody gave: it forms no replicate group.
# `operation` says how the model was made from its base, as the lineage labels the edge ("prune channel 50
# %, fine-tune", "2:4, fine-tune", "int8"; compute.runs.operation; null for models from elsewhere). The
# footprint (compute.footprint, measured at extraction): `file_bytes` of the `checkpoint` file (null
# without one), CPU milliseconds per image at batch 1 and 256 (median of repeated runs) with the thread
# count (1) and the one-minute load average while they ran.
MODEL_CARD_COLUMNS = ("base", "loader", "operation", "file_bytes", "latency_ms_batch1", "latency_ms_batch256",
                      "latency_threads", "latency_load_average")
MODEL_REQUIRED_SCHEMA = pa.schema([f for f in MODEL_SCHEMA if f.name not in MODEL_CARD_COLUMNS])
# The card columns every row fills (a null there is damage: pages label, sort and pair models by them).
CARD_REQUIRED = ("model_id", "arch", "method", "target_sparsity")

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

# One row per image file a setting read from a folder tree (store.provenance), so one image can be checked.
LISTING_SCHEMA = pa.schema([
    pa.field("sample_id", pa.int64(), nullable=False),
    pa.field("key", pa.string(), nullable=False),      # <class>/<file>, relative to the recorded tree
    pa.field("sha256", pa.string(), nullable=False),   # hex sha256 of the file's bytes
])

# Columns a filter expression may name (analysis.filters): the name and what it means, for the help text.
FILTER_COLUMNS: dict[str, str] = {
    "model_id": "model identifier",
    "arch": "architecture name",
    "method": "pruning method ('dense' for the unpruned model)",
    "target_sparsity": "requested fraction of zero weights",
    "sparsity": "measured fraction of the unpruned network's weights removed (zeroed, or cut away with their channels)",
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
    "reference_correct": "the model's reference (its base, or the chosen reference) is correct on this sample "
                     "and setting",
    "reference_feature_norm": "the reference model's feature_norm on this sample and setting",
    "reference_angle_true": "the reference model's angle_true on this sample and setting",
    "reference_margin": "the reference model's margin on this sample and setting",
}
