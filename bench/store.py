"""A benchmark store the size of a real study: `python -m bench store --rows 100M --out DIR`.

The study is a CIFAR-10-C pruning sweep (the issue's 96-million-row example): per seed a dense model and
8 methods x 4 sparsities, each over 10,000 test samples clean and under the 19 corruptions x 5
severities (96 settings), with as many models as `--rows` asks for (100M: 105 models, 100.8M rows in
10,080 partitions, about 10 GB). Values are synthetic but hang together like real ones: whether a model
gets a sample right follows an item-response model, so the same samples are hard for every model (a
latent difficulty per sample, and a per-sample sensitivity to each corruption), accuracy falls with
severity and more steeply for sparser models, and replicate seeds agree more than different methods;
each row's geometry then follows testkit.synthetic.prediction_columns (angles, logits through the
model's classifier, margins with the right sign). Clean accuracy runs from about 95% (dense) down to
about 80% (95% sparsity).

Everything is written through the store's own writer (store.writer: atomic files, completion markers
with the evaluation-matrix sums), by `--workers` processes taking models in turn; a rerun skips complete
partitions, so an interrupted build resumes. At the end `compute index`'s derived files are built (the
serving copy, the by-sample index, the pre-aggregates and the stored agreement), unless `--no-index`.

    python -m bench store --rows 100M --out /work/bench-100m      # about 30 min on 2 cores
    python -m bench store --rows 2M --out /tmp/small --workers 1   # a quick check of the generator
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from compute import stored_answers
from store import derived, reader, vocabulary, writer
from testkit import synthetic

METHODS = ("gmp", "ltr", "lrr", "snip", "synflow", "random", "edgepopup", "biprop")
SPARSITIES = (0.5, 0.8, 0.9, 0.95)
SEVERITIES = vocabulary.SEVERITIES
CORRUPTIONS = vocabulary.CORRUPTION_NAMES
SETTINGS = (("clean", 0), *((c, s) for c in CORRUPTIONS for s in SEVERITIES))
ARCH = "resnet20"
DENSE_SKILL = 2.6  # logit of a dense model's clean accuracy on a sample of difficulty 0
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgG]?)")


def parse_rows(text: str) -> int:
    """'100M', '2.5m', '20k' or '1000000' -> a row count; argparse error for anything else."""
    match = _SIZE.fullmatch(text.strip())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"--rows {text!r} is not a positive count like 100M, 20k or 5000000")
    return int(float(match[1]) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match[2].lower()])


def model_rows(count: int) -> list[dict]:
    """`count` model cards of the sweep, seed by seed: the dense model, then every method x sparsity."""
    per_seed = [("dense", 0.0)] + [(m, s) for m in METHODS for s in SPARSITIES]
    rows = []
    for index in range(count):
        seed, (method, sparsity) = divmod(index, len(per_seed))[0], per_seed[index % len(per_seed)]
        model_id = f"{ARCH}-{method}-{round(sparsity * 100)}-s{seed}"
        rows.append({"model_id": model_id, "arch": ARCH, "method": method, "target_sparsity": sparsity,
                     "sparsity": sparsity, "seed": seed, "num_params": 272_474,
                     "num_nonzero": round(272_474 * (1 - sparsity)), "checkpoint": None,
                     "hparams": json.dumps({"method": method, "sparsity": sparsity, "seed": seed})})
    return rows


class Study:
    """The latent truth every partition is drawn from, the same in every worker (built from `seed`)."""

    def __init__(self, num_samples: int, num_classes: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.num_classes = num_classes
        self.labels = rng.integers(0, num_classes, num_samples)
        # A sample's difficulty, shared by every model and setting (some images are hard for all).
        self.difficulty = rng.normal(0.0, 1.0, num_samples) + rng.normal(0.0, 0.3, num_classes)[self.labels]
        # How much each corruption (per severity step) costs, and each sample's own sensitivity to it.
        self.corruption_cost = dict(zip(CORRUPTIONS, rng.uniform(0.25, 0.75, len(CORRUPTIONS)), strict=True))
        self.sensitivity = {c: rng.normal(0.0, 0.6, num_samples) for c in CORRUPTIONS}
        self.method_cost = dict(zip(METHODS, rng.uniform(0.5, 1.5, len(METHODS)), strict=True))
        self.seed = seed

    def skill(self, model: dict) -> float:
        """A model's clean logit-accuracy offset: sparser models, and cruder methods, lose more."""
        if model["method"] == "dense":
            return DENSE_SKILL
        return DENSE_SKILL - self.method_cost[model["method"]] * 1.8 * model["target_sparsity"] ** 4

    def correct(self, model: dict, index: int, corruption: str, severity: int,
                rng: np.random.Generator) -> np.ndarray:
        """Which samples one model gets right in one setting: an item-response draw around the latent truth,
        a model's own noise per sample (its seed) and a little per row."""
        own = np.random.default_rng([self.seed, 1, index]).normal(0.0, 0.5, len(self.labels))
        score = self.skill(model) - 1.5 * self.difficulty + own + rng.normal(0.0, 0.4, len(self.labels))
        if severity:
            fragile = 1.0 + 0.3 * model["target_sparsity"]
            score -= severity * (self.corruption_cost[corruption] * fragile + 0.2 * self.sensitivity[corruption])
        return score > 0


def _write_models(root: Path, study: Study, models: list[tuple[int, dict]]) -> int:
    """Write every missing partition of these (index, model) pairs; returns how many were written."""
    complete = {(m["model_id"], m["corruption"], m["severity"]) for m in reader.complete_partitions(root)}
    written = 0
    for index, model in models:
        classifier_rng = np.random.default_rng([study.seed, 2, index])
        norms, biases = synthetic.classifier(classifier_rng, study.num_classes)
        for number, (corruption, severity) in enumerate(SETTINGS):
            if (model["model_id"], corruption, severity) in complete:
                continue
            rng = np.random.default_rng([study.seed, 3, index, number])
            correct = study.correct(model, index, corruption, severity, rng)
            columns = synthetic.prediction_columns(rng, study.labels, study.num_classes, 0.0, norms, biases,
                                                   correct=correct)
            synthetic.write_partition(root, model["model_id"], corruption, severity, columns)
            written += 1
    return written


def _worker(arguments: tuple[str, int, int, int, list[tuple[int, dict]]]) -> int:
    root, num_samples, num_classes, seed, models = arguments
    return _write_models(Path(root), Study(num_samples, num_classes, seed), models)


def build(root: Path, rows: int, num_samples: int = 10_000, num_classes: int = 10, workers: int = 2,
          seed: int = 0, index: bool = True) -> Path:
    """Write (or complete) the benchmark store of about `rows` prediction rows at `root`."""
    num_models = max(1, math.ceil(rows / (num_samples * len(SETTINGS))))
    study = Study(num_samples, num_classes, seed)
    models = model_rows(num_models)
    images = np.random.default_rng([seed, 4]).integers(0, 256, (num_samples, 32, 32, 3), dtype=np.uint8)
    writer.init_store(root, dataset="synthetic-cifar10c", class_names=[f"class{c}" for c in range(num_classes)],
                      images=images, labels=study.labels, corruptions=CORRUPTIONS, severities=SEVERITIES)
    writer.upsert_classifiers(root, {m["model_id"]: synthetic.classifier(np.random.default_rng([seed, 2, i]),
                                                                         num_classes)
                                     for i, m in enumerate(models)})
    total = num_models * len(SETTINGS) * num_samples
    print(f"{root}: {num_models} models x {len(SETTINGS)} settings x {num_samples:,} samples = {total:,} rows, "
          f"{num_classes} classes, {workers} worker(s)", flush=True)
    start = time.perf_counter()
    jobs = [(str(root), num_samples, num_classes, seed, list(enumerate(models))[w::workers]) for w in range(workers)]
    if workers == 1:
        written = _worker(jobs[0])
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            written = sum(pool.map(_worker, jobs))
    print(f"wrote {written:,} partitions in {time.perf_counter() - start:.0f} s", flush=True)
    writer.upsert_models(root, synthetic.model_cards(models))  # clean accuracy from the clean partitions' markers
    synthetic.write_embeddings(root, models, study.labels, reader.read_manifest(root)["class_names"],
                               np.random.default_rng([seed, 5]))
    if index:
        started = time.perf_counter()
        derived.build_all(root)
        stored_answers.build_all(root)  # the per-setting answers compute index stores
        print(f"built the derived files (compute index) in {time.perf_counter() - started:.0f} s", flush=True)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"done in {time.perf_counter() - start:.0f} s: {size / 1e9:.2f} GB on disk "
          f"({size / total:.1f} bytes/row); load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench store", description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=parse_rows, required=True, help="about how many prediction rows (100M, 2M, 500k)")
    parser.add_argument("--out", type=Path, required=True, help="store directory (created; a partial one is completed)")
    parser.add_argument("--samples", type=int, default=10_000, help="test samples (default 10,000, as CIFAR-10)")
    parser.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="writer processes (default 2)")
    parser.add_argument("--no-index", dest="index", action="store_false",
                        help="skip the derived files (build them later with python -m compute index --store DIR)")
    options = parser.parse_args(argv)
    build(options.out, options.rows, options.samples, options.classes, options.workers, index=options.index)


if __name__ == "__main__":
    main(sys.argv[1:])
