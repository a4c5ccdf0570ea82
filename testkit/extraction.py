"""Helpers for the extraction tests: tiny real checkpoints, the extract command line, and the store's rows
read back with pyarrow alone (no DuckDB), as any Parquet engine would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from compute import checkpoint, datasets, models
from store import layout

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 60
CORRUPTIONS = ("gaussian_noise", "contrast", "fog")
SEVERITIES = (1, 3)
PARTITIONS_PER_MODEL = 1 + len(CORRUPTIONS) * len(SEVERITIES)
KEYS = ["model_id", "corruption", "severity", "sample_id"]


def save_small_cnn(path: Path, seed: int, model: torch.nn.Module | None = None) -> Path:
    """A digits small_cnn checkpoint (freshly initialised with `seed`: 0 epochs), or `model` when given."""
    data = datasets.load("digits")
    torch.manual_seed(seed)
    model = model or models.build("small_cnn", data.num_classes, (0.5,) * 3, (0.25,) * 3)
    checkpoint.save(path, model, arch="small_cnn", num_classes=data.num_classes, mean=(0.5,) * 3,
                    std=(0.25,) * 3, dataset="digits", hparams={"model_id": path.stem, "seed": seed})
    return path


def small_checkpoints(directory: Path, count: int = 2) -> list[Path]:
    return [save_small_cnn(directory / f"small{seed}.pt", seed) for seed in range(count)]


def extract_args(store: Path, checkpoints: Sequence[Path], *extra: str) -> list[str]:
    """`extract` arguments of the tiny setting every extraction test uses."""
    return ["extract", "--store", str(store), "--checkpoints", *map(str, checkpoints), "--limit", str(LIMIT),
            "--corruptions", *CORRUPTIONS, "--severities", ",".join(map(str, SEVERITIES)),
            "--batch-size", "16", "--device", "cpu", *extra]


def start_extract(store: Path, checkpoints: Sequence[Path], *extra: str) -> subprocess.Popen:
    """`python -m compute extract ...` as its own process, one torch thread (the machine is shared)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "compute", *extract_args(store, checkpoints, *extra)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def prediction_rows(store: Path) -> pa.Table:
    """Every prediction row with its partition keys, sorted by key: read by pyarrow's hive partitioning."""
    dataset = ds.dataset(store / layout.PREDICTIONS, format="parquet", partitioning="hive")
    table = dataset.to_table()
    return table.sort_by([(key, "ascending") for key in KEYS])


def duplicate_keys(table: pa.Table) -> int:
    """How many rows repeat a (model, corruption, severity, sample) key already seen."""
    keys = list(zip(*(table.column(key).to_pylist() for key in KEYS), strict=True))
    return len(keys) - len(set(keys))


def assert_same_rows(left: pa.Table, right: pa.Table) -> None:
    """Equal keys, integers and flags exactly; floats to float32 rounding (thread counts may differ)."""
    assert left.num_rows == right.num_rows
    assert left.column_names == right.column_names
    for name in left.column_names:
        a, b = left.column(name).combine_chunks(), right.column(name).combine_chunks()
        is_list = pa.types.is_fixed_size_list(a.type) or pa.types.is_list(a.type)
        if pa.types.is_floating(a.type) or (is_list and pa.types.is_floating(a.type.value_type)):
            a_values = a.flatten() if is_list else a
            b_values = b.flatten() if is_list else b
            np.testing.assert_allclose(a_values.to_numpy(zero_copy_only=False),
                                       b_values.to_numpy(zero_copy_only=False), rtol=1e-5, atol=1e-5,
                                       err_msg=name)
        else:
            assert a.to_pylist() == b.to_pylist(), name
