"""A small study with chosen models and settings, written partition by partition: five models (two of
them the same method at two seeds, one the exact twin of another), non-finite geometry in one partition,
and each partition's accuracy set by the caller when it matters."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from store import layout, reader, vocabulary, writer
from testkit import synthetic
from testkit.synthetic import prediction_columns

NUM_CLASSES = 4
NUM_SAMPLES = 80
CORRUPTIONS = ("contrast", "fog", "gaussian_noise")
SEVERITIES = (1, 3)
SETTINGS = [(layout.CLEAN, 0)] + [(c, s) for c in CORRUPTIONS for s in SEVERITIES]
# model_id, method, target_sparsity, seed; "twin" copies every prediction of "ft" (identical behaviour).
MODELS = [("dense", "dense", 0.0, 0), ("lrr-a", "lrr", 0.9, 0), ("lrr-b", "lrr", 0.9, 1),
          ("ft", "ft", 0.5, 0), ("twin", "ft", 0.8, 0)]
NON_FINITE = ("lrr-a", "fog", 3, [2, 5, 11])  # rows whose geometry is made non-finite


def write_study(root: Path, models=MODELS, settings=SETTINGS, accuracy: Callable[[str, str], float] | None = None,
                num_samples: int = NUM_SAMPLES, seed: int = 0) -> Path:
    """A store with chosen models and settings (testkit.synthetic.write); `accuracy(model_id, corruption)`
    sets each partition's. Every model has prediction_columns' default classifier (unit norms, no bias)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, num_samples)
    written: dict[tuple[str, str, int], dict] = {}

    def columns(model_id: str, corruption: str, severity: int) -> dict:
        if model_id == "twin":
            columns = written[("ft", corruption, severity)]
        else:
            level = accuracy(model_id, corruption) if accuracy else rng.uniform(0.8, 0.98)
            columns = prediction_columns(rng, labels, NUM_CLASSES, level)
        if (model_id, corruption, severity) == NON_FINITE[:3]:
            columns = dict(columns, finite=columns["finite"].copy())
            for name in ("angle_true", "feature_norm", "margin"):
                columns[name] = columns[name].copy()
                columns[name][NON_FINITE[3]] = np.nan
            columns["finite"][NON_FINITE[3]] = False
        written[(model_id, corruption, severity)] = columns
        return columns

    rows = [{"model_id": model_id, "arch": "a", "method": method, "target_sparsity": sparsity, "sparsity": sparsity,
             "seed": seed_, "num_params": 10, "num_nonzero": 5, "checkpoint": None, "hparams": "{}",
             "clean_accuracy": 0.0} for model_id, method, sparsity, seed_ in models]
    classifier = (np.ones(NUM_CLASSES), np.zeros(NUM_CLASSES))
    return synthetic.write(
        root, dataset="t", class_names=[f"c{i}" for i in range(NUM_CLASSES)],
        images=np.zeros((num_samples, 32, 32, 3), np.uint8), labels=labels,
        corruptions=sorted({c for c, _ in settings if c != layout.CLEAN}), severities=vocabulary.SEVERITIES,
        settings=settings, models=((row, classifier, functools.partial(columns, row["model_id"])) for row in rows))


# The demo study's models (studies/digits.toml): method, target sparsity and measured sparsity
# (channel pruning at 50 % of the channels removes 75 % of the weights); every base is the dense model but
# the int8 chain's, the channel-pruned model.
DEMO_MODELS = [("dense", 0.0, 0.0), ("ft", 0.5, 0.5), ("ft", 0.9, 0.9), ("lrr", 0.5, 0.5), ("lrr", 0.9, 0.9),
               ("ltr", 0.9, 0.9), ("random", 0.9, 0.9), ("gmp", 0.9, 0.9), ("snip", 0.9, 0.9),
               ("edgepopup", 0.8, 0.8), ("biprop", 0.8, 0.8), ("channel", 0.5, 0.7485), ("nm", 0.5, 0.5),
               ("int8", 0.0, 0.0), ("channel+int8", 0.5, 0.7485)]


def demo_model_id(method: str, target_sparsity: float, seed: int = 0) -> str:
    sparsity = "" if method in ("dense", "int8") else f"-{target_sparsity * 100:g}"
    return f"small_cnn-{method.replace('+', '-')}{sparsity}-s{seed}"


def write_demo_shaped(root: Path, num_samples: int = 200, seeds: tuple[int, ...] = (0,),
                      severities: tuple[int, ...] = (1, 3, 5)) -> Path:
    """A store shaped as the demo's (its models, every corruption at `severities`) without training:
    accuracies fall with sparsity, supermask models lose less under corruption, a few corruptions barely
    hurt the dense model (left out of relative mCE), and the int8 chain's base is the channel-pruned model."""
    models = [(demo_model_id(m, t, seed), m, t, seed) for seed in seeds for m, t, _ in DEMO_MODELS]
    sparsity = {demo_model_id(m, t, seed): measured for seed in seeds for m, t, measured in DEMO_MODELS}
    harm = {c: 0.03 * (i % 7) for i, c in enumerate(vocabulary.CORRUPTIONS)}  # 0: barely hurts the reference

    def accuracy(model_id: str, corruption: str) -> float:
        level = 0.97 - 0.15 * sparsity[model_id] ** 3
        if corruption == layout.CLEAN:
            return level
        robust = 0.5 if any(m in model_id for m in ("biprop", "edgepopup")) else 1.0
        return level - robust * (0.03 + harm[corruption] + 0.1 * sparsity[model_id])

    settings = [(layout.CLEAN, 0)] + [(c, s) for c in vocabulary.CORRUPTIONS for s in severities]
    write_study(root, models=models, settings=settings, accuracy=accuracy, num_samples=num_samples)
    rows = reader.read_table(root / layout.MODELS).to_pylist()
    for row in rows:
        row["sparsity"] = sparsity[row["model_id"]]
        if row["method"] == "channel+int8":
            row["base"] = demo_model_id("channel", 0.5, row["seed"])
        if row["method"] in vocabulary.QUANTIZATIONS:
            row["operation"] = row["method"]
    writer.upsert_models(root, rows)
    return root
