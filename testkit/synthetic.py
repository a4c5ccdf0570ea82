"""A synthetic store with the real layout, for tests and benchmarks at any size (no model needed).

Per-sample values are drawn so that they hang together like real geometry: harder settings lower the
accuracy, misclassified samples have larger angles to their class and negative margins, and the logits
follow from the angles through each model's classifier (logit_c = |W_c| |x| cos θ_c + b_c), so a
format-2 store derives the same angles back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from compute import cards, geometry
from store import layout, reader, vocabulary, writer

METHODS = ("dense", "ft", "gmp", "ltr", "lrr", "random", "snip", "edgepopup", "biprop")


def classifier(rng: np.random.Generator, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class weight norms |W_c| and biases b_c of a made-up classifier."""
    return rng.uniform(0.9, 1.1, num_classes), rng.normal(0.0, 0.05, num_classes)


def prediction_columns(rng: np.random.Generator, labels: np.ndarray, num_classes: int, accuracy: float,
                       norms: np.ndarray | None = None, biases: np.ndarray | None = None,
                       correct: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every format-1 column of one partition (scalars, and (N, C) `angles` and `logits`); the classifier
    defaults to unit norms and no bias. Which samples the model gets right is drawn at `accuracy`, or
    given as `correct` (bool per sample); pred is the largest logit."""
    n = len(labels)
    rows = np.arange(n)
    norms = np.ones(num_classes) if norms is None else norms
    biases = np.zeros(num_classes) if biases is None else biases
    correct = rng.random(n) < accuracy if correct is None else np.asarray(correct, bool)
    wrong = (labels + rng.integers(1, num_classes, n)) % num_classes
    pred = np.where(correct, labels, wrong)
    angles = rng.uniform(70, 110, (n, num_classes)).astype(np.float32)
    angle_true = np.where(correct, rng.uniform(20, 60, n), rng.uniform(60, 100, n)).astype(np.float32)
    angles[rows, labels] = angle_true
    angles[rows, pred] = np.minimum(angles[rows, pred], np.where(correct, 90, angle_true - 5))
    feature_norm = rng.gamma(4.0, 2.0, n).astype(np.float32)
    logits = (norms[None] * feature_norm[:, None] * np.cos(np.deg2rad(angles)) + biases[None]).astype(np.float32)
    pred = logits.argmax(axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    wrong_angles = angles.copy()
    wrong_angles[rows, labels] = np.inf
    margin = np.where(pred == labels, rng.uniform(0, 3, n), -rng.uniform(0, 3, n)).astype(np.float32)
    return {
        "label": labels, "pred": pred, "correct": pred == labels,
        "loss": -np.log(np.maximum(probs[rows, labels], 1e-12)),
        "confidence": probs[rows, pred], "p_true": probs[rows, labels],
        "feature_norm": feature_norm, "weight_norm_true": norms[labels].astype(np.float32),
        "cos_true": np.cos(np.deg2rad(angle_true)), "angle_true": angle_true,
        "angle_pred": angles[rows, pred], "angle_nearest_wrong": wrong_angles.min(axis=1),
        "margin": margin, "finite": np.ones(n, bool), "angles": angles, "logits": logits,
    }


def model_cards(rows: Sequence[dict]) -> list[dict]:
    """Model rows as extraction records them: the loader of a prunescope checkpoint, and each pruned model's
    base by extraction's own rule (compute.cards.fill_bases: the dense model of its arch, its seed first)."""
    loader = json.dumps(cards.CHECKPOINT_LOADER, sort_keys=True)
    entries = [cards.ExtractModel(row["model_id"], None, {**row, "loader": loader, "base": None}) for row in rows]
    cards.fill_bases(entries, {})
    return [entry.info for entry in entries]


# The made-up network of every synthetic model: (layer, kind, output channels, weights per output channel);
# the classifier's outputs are the classes.
LAYERS = (("body.0", "conv", 16, 3 * 9), ("body.3", "conv", 32, 16 * 9), ("body.6", "conv", 64, 32 * 9),
          ("classifier", "linear", None, 64))


def layer_rows(row: dict, num_classes: int) -> list[dict]:
    """layers.parquet rows of a synthetic model (layout.LAYER_SCHEMA without model_id), a pure function of its
    card: the model's sparsity spread over the convolutions (the first keeps more, the last loses more, as
    global magnitude pruning does), the classifier dense, every channel live."""
    rows = []
    for position, (layer, kind, channels, fan_in) in enumerate(LAYERS):
        channels = channels or num_classes
        weights = channels * fan_in
        share = 0.0 if kind == "linear" else min(1.0, float(row["sparsity"]) * (0.6 + 0.3 * position))
        nonzero = weights - int(round(share * weights))
        rows.append({"layer": layer, "position": position, "kind": kind, "num_weights": weights, "num_nonzero": nonzero,
                     "out_channels": channels, "live_out_channels": channels,
                     "weight_norm": float(np.sqrt(nonzero) * 0.1)})
    return rows


def partition(columns: dict[str, np.ndarray], per_class: layout.PerClass | None = None) -> tuple[pa.Table, dict]:
    """Format-1 columns -> (format-2 table, completion summary), keeping the classes extraction would."""
    per_class = per_class or layout.PerClass()
    logits = torch.from_numpy(np.asarray(columns["logits"], np.float32))
    classes, kept = geometry.stored_classes(logits, torch.from_numpy(np.asarray(columns["label"], np.int64)),
                                            per_class.all_up_to, per_class.top_k)
    table = writer.prediction_table(columns, classes.numpy(), logits.gather(1, classes).numpy(), kept.numpy())
    return table, writer.partition_summary(columns)


def format1_table(columns: dict[str, np.ndarray], num_classes: int) -> pa.Table:
    """Format-1 columns as a format-1 table (every scalar, fixed-size angles and logits): the one
    format-1 writer, kept for benchmarks and for tests of reading and migrating old stores."""
    target = layout.prediction_schema(num_classes, version=1)
    n = len(columns["label"])
    arrays = [pa.array(np.arange(n, dtype=np.int32))]
    for f in list(target)[1:]:
        values = np.asarray(columns[f.name])
        if pa.types.is_fixed_size_list(f.type):
            flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, num_classes))
        else:
            arrays.append(pa.array(values.astype(f.type.to_pandas_dtype()), type=f.type))
    return pa.table(arrays, schema=target)


def write_partition(root: Path, model_id: str, corruption: str, severity: int, columns: dict[str, np.ndarray],
                    per_class: layout.PerClass | None = None) -> int:
    """Write one partition of format-1 columns into a format-2 store; returns its bytes."""
    return writer.write_partition(root, model_id, corruption, severity, *partition(columns, per_class))


Columns = dict[str, np.ndarray]
# One synthetic model: its models.parquet row (without the card's loader and base), its classifier's
# per-class weight norms and biases, and the format-1 columns of its partition in a setting.
SyntheticModel = tuple[dict, tuple[np.ndarray, np.ndarray], Callable[[str, int], Columns]]


def write(root: str | Path, *, dataset: str, class_names: Sequence[str], images: np.ndarray, labels: np.ndarray,
          corruptions: Sequence[str], severities: Sequence[int], settings: Sequence[tuple[str, int]],
          models: Iterable[SyntheticModel], per_class: layout.PerClass | None = None,
          version: int = layout.SCHEMA_VERSION) -> Path:
    """The one synthetic-store writer, through store.writer as extraction writes: the store's manifest,
    samples and images, then model after model (taken from `models` one at a time, so a generator may
    draw each model's values just before its partitions) its classifier and its partition in each of
    `settings`, then the model cards (`model_cards`) and their layer rows (`layer_rows`). Format 2, or 1
    to test reading and migrating old stores (no per-class record, no classifiers, no layer rows, the rows
    of its day: no card, so `compute migrate` fills their bases)."""
    root = Path(root)
    writer.init_store(root, dataset=dataset, class_names=list(class_names), images=images, labels=labels,
                      corruptions=corruptions, severities=severities, per_class=per_class)
    if version == 1:
        manifest = json.loads((root / layout.MANIFEST).read_text())
        manifest.pop("per_class")
        writer.write_json(root, {**manifest, "schema_version": 1}, root / layout.MANIFEST)
    rows = []
    for row, (norms, biases), columns_of in models:
        if version != 1:  # format 1 did not record the classifier
            writer.upsert_classifiers(root, {row["model_id"]: (norms, biases)})
        for corruption, severity in settings:
            columns = columns_of(corruption, severity)
            if version == 1:
                writer.write_partition(root, row["model_id"], corruption, severity,
                                       format1_table(columns, len(class_names)), writer.partition_summary(columns))
            else:
                write_partition(root, row["model_id"], corruption, severity, columns, per_class)
        rows.append(row)
    writer.upsert_models(root, rows if version == 1 else model_cards(rows))
    if version != 1:  # format 1 predates the layer rows
        writer.upsert_layers(root, {row["model_id"]: layer_rows(row, len(class_names)) for row in rows})
    return root


def write_store(root: str | Path, *, num_models: int, num_samples: int, corruptions: Sequence[str],
                severities: Sequence[int] = vocabulary.SEVERITIES, num_classes: int = 10, seed: int = 0,
                per_class: layout.PerClass | None = None, version: int = layout.SCHEMA_VERSION,
                class_names: Sequence[str] | None = None, embeddings: bool = False, seeds: int = 1) -> Path:
    """A complete synthetic store of `num_models` models (`write`); returns its path. Model 0 is the dense
    model; with `seeds` > 1 every (method, sparsity) comes as that many consecutive replicates, seeds 0..
    (ids end in -s<seed>), dense included; each pruned model's base is the dense model of its seed. Classes
    are named `class0`.. unless `class_names` (one per class) says otherwise. With `embeddings`,
    embeddings/ as `python -m compute embed` lays it out (random coordinates; samples on clean images)."""
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    images = rng.integers(0, 256, (num_samples, 32, 32, 3), dtype=np.uint8)

    written: list[dict] = []  # the model rows, for the embeddings

    def models() -> Iterator[SyntheticModel]:
        for index in range(num_models):
            group, replicate = divmod(index, seeds)
            method = METHODS[0] if group == 0 else METHODS[1 + (group - 1) % (len(METHODS) - 1)]
            sparsity = 0.0 if method == vocabulary.UNPRUNED else (0.5, 0.8, 0.9, 0.95)[(group - 1) // (len(METHODS) - 1) % 4]
            model_id = f"m{index:02d}-{method}-{round(sparsity * 100)}" + (f"-s{replicate}" if seeds > 1 else "")
            skill = rng.uniform(0.85, 0.95)
            norms, biases = classifier(rng, num_classes)
            row = {"model_id": model_id, "arch": "synthetic", "method": method, "target_sparsity": sparsity,
                   "sparsity": sparsity, "seed": replicate, "num_params": 1000,
                   "num_nonzero": int(1000 * (1 - sparsity)), "checkpoint": None,
                   "hparams": json.dumps({"method": method}), "clean_accuracy": skill}

            def columns(corruption: str, severity: int, skill=skill, norms=norms, biases=biases) -> Columns:
                accuracy = skill * (1 - 0.08 * severity * rng.uniform(0.2, 1.0))
                return prediction_columns(rng, labels, num_classes, accuracy, norms, biases)

            written.append(row)
            yield row, (norms, biases), columns

    names = list(class_names or (f"class{c}" for c in range(num_classes)))
    settings = [(layout.CLEAN, 0)] + [(c, s) for c in corruptions for s in severities]
    root = write(root, dataset="synthetic", class_names=names, images=images, labels=labels,
                 corruptions=corruptions, severities=severities, settings=settings,
                 models=models(), per_class=per_class, version=version)
    if embeddings:
        write_embeddings(root, written, labels, reader.read_manifest(root)["class_names"], rng)
    return root


def write_embeddings(root: Path, models: list[dict], labels: np.ndarray, class_names: Sequence[str],
                     rng: np.random.Generator) -> None:
    """embeddings/ with random coordinates in the real schemas: every model, a chain as its tree, and every
    model's samples on clean images."""
    import pyarrow.parquet as pq

    folder = root / layout.EMBEDDINGS
    folder.mkdir(exist_ok=True)
    ids = [m["model_id"] for m in models]
    pq.write_table(pa.table({
        "model_id": ids, "arch": [m["arch"] for m in models], "method": [m["method"] for m in models],
        "target_sparsity": [m["target_sparsity"] for m in models], "x": rng.normal(size=len(ids)).astype("f4"),
        "y": rng.normal(size=len(ids)).astype("f4"), "projection": ["umap"] * len(ids),
    }, schema=layout.MODEL_EMBEDDING_SCHEMA), folder / layout.MODEL_EMBEDDING)
    pq.write_table(pa.table({"source": ids[:-1], "target": ids[1:], "distance": [1.0] * (len(ids) - 1)},
                            schema=layout.MODEL_TREE_SCHEMA), folder / layout.MODEL_TREE)
    n, count = len(labels), len(ids) * len(labels)
    pq.write_table(pa.table({
        "model_id": np.repeat(ids, n), "corruption": [layout.CLEAN] * count, "severity": np.zeros(count, np.int32),
        "sample_id": np.tile(np.arange(n, dtype=np.int32), len(ids)), "label": np.tile(labels.astype(np.int16), len(ids)),
        "label_name": np.tile(np.asarray(class_names, dtype=object)[labels], len(ids)),
        "correct": rng.random(count) < 0.8, "x": rng.normal(size=count).astype("f4"),
        "y": rng.normal(size=count).astype("f4"), "projection": ["umap"] * count,
    }, schema=layout.SAMPLE_EMBEDDING_SCHEMA), folder / layout.SAMPLE_EMBEDDING)


def rewrite_partition(store: Path, corruption: str, severity: int, seed: int = 7) -> str:
    """Write other rows (10 classes, accuracy 0.5) into the first complete model's partition of one setting,
    under the same id and file names, as a model extracted again would: what a derived file must notice.
    Returns the model id."""
    model = reader.complete_partitions(store)[0]["model_id"]
    rng = np.random.default_rng(seed)
    labels = pq.read_table(store / layout.SAMPLES).column("label").to_numpy()
    write_partition(store, model, corruption, severity, prediction_columns(rng, labels, 10, 0.5, *classifier(rng, 10)))
    return model
