"""A synthetic store with the real layout, for tests and benchmarks at any size (no model needed).

Per-sample values are drawn so that they hang together like real geometry: harder settings lower the
accuracy, misclassified samples have larger angles to their class and negative margins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from store import writer

METHODS = ("dense", "ft", "gmp", "ltr", "lrr", "random", "snip", "edgepopup", "biprop")


def prediction_columns(rng: np.random.Generator, labels: np.ndarray, num_classes: int,
                       accuracy: float) -> dict[str, np.ndarray]:
    n = len(labels)
    correct = rng.random(n) < accuracy
    wrong = (labels + rng.integers(1, num_classes, n)) % num_classes
    pred = np.where(correct, labels, wrong)
    angles = rng.uniform(70, 110, (n, num_classes)).astype(np.float32)
    angle_true = np.where(correct, rng.uniform(20, 60, n), rng.uniform(60, 100, n)).astype(np.float32)
    angles[np.arange(n), labels] = angle_true
    angles[np.arange(n), pred] = np.minimum(angles[np.arange(n), pred], np.where(correct, 90, angle_true - 5))
    feature_norm = rng.gamma(4.0, 2.0, n).astype(np.float32)
    logits = (feature_norm[:, None] * np.cos(np.deg2rad(angles))).astype(np.float32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    wrong_angles = angles.copy()
    wrong_angles[np.arange(n), labels] = np.inf
    margin = np.where(correct, rng.uniform(0, 3, n), -rng.uniform(0, 3, n)).astype(np.float32)
    return {
        "label": labels, "pred": pred, "correct": correct,
        "loss": -np.log(np.maximum(probs[np.arange(n), labels], 1e-12)),
        "confidence": probs[np.arange(n), pred], "p_true": probs[np.arange(n), labels],
        "feature_norm": feature_norm, "weight_norm_true": np.ones(n, np.float32),
        "cos_true": np.cos(np.deg2rad(angle_true)), "angle_true": angle_true,
        "angle_pred": angles[np.arange(n), pred], "angle_nearest_wrong": wrong_angles.min(axis=1),
        "margin": margin, "finite": np.ones(n, bool), "angles": angles, "logits": logits,
    }


def write_store(root: str | Path, *, num_models: int, num_samples: int, corruptions: Sequence[str],
                severities: Sequence[int] = (1, 2, 3, 4, 5), num_classes: int = 10, seed: int = 0) -> Path:
    """Write a complete synthetic store; returns its path. Model 0 is the dense model."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    labels = rng.integers(0, num_classes, num_samples)
    images = rng.integers(0, 256, (num_samples, 32, 32, 3), dtype=np.uint8)
    writer.init_store(root, dataset="synthetic", class_names=[f"class{c}" for c in range(num_classes)],
                      images=images, labels=labels, corruptions=corruptions, severities=severities)
    rows = []
    for index in range(num_models):
        method = METHODS[0] if index == 0 else METHODS[1 + (index - 1) % (len(METHODS) - 1)]
        sparsity = 0.0 if method == "dense" else (0.5, 0.8, 0.9, 0.95)[(index - 1) // (len(METHODS) - 1) % 4]
        model_id = f"m{index:02d}-{method}-{round(sparsity * 100)}"
        skill = rng.uniform(0.85, 0.95)
        settings = [("clean", 0)] + [(c, s) for c in corruptions for s in severities]
        for corruption, severity in settings:
            accuracy = skill * (1 - 0.08 * severity * rng.uniform(0.2, 1.0))
            columns = prediction_columns(rng, labels, num_classes, accuracy)
            writer.write_partition(root, model_id, corruption, severity,
                                   writer.prediction_table(columns, num_classes))
        rows.append({"model_id": model_id, "arch": "synthetic", "method": method, "target_sparsity": sparsity,
                     "sparsity": sparsity, "seed": 0, "num_params": 1000, "num_nonzero": int(1000 * (1 - sparsity)),
                     "checkpoint": None, "hparams": json.dumps({"method": method}), "clean_accuracy": skill})
    writer.upsert_models(root, rows)
    return root
