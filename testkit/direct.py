"""Every prediction row of a store read file by file with pyarrow and the derived columns computed with
NumPy, never DuckDB: what the tests compare the catalog and the analysis against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from store import layout


def _derived(table: pa.Table) -> dict[str, np.ndarray]:
    """The format-1 scalars a format-2 file does not store, derived here in float64 with NumPy (README
    "The store")."""
    n = table.num_rows
    label = table.column("label").to_numpy()
    pred = table.column("pred").to_numpy()
    loss = table.column("loss").to_numpy().astype(np.float64)
    logit_true, logit_pred = np.empty(n), np.empty(n)
    for i, (classes, logits) in enumerate(zip(table.column("classes").to_pylist(), table.column("logits").to_pylist(),
                                              strict=True)):
        logit_true[i] = logits[classes.index(label[i])]
        logit_pred[i] = logits[classes.index(pred[i])]
    angle_true = table.column("angle_true").to_numpy().astype(np.float64)
    return {
        "correct": pred == label, "confidence": np.exp(logit_pred - logit_true - loss).astype(np.float32),
        "p_true": np.exp(-loss).astype(np.float32), "cos_true": np.cos(np.radians(angle_true)).astype(np.float32),
    }


def direct_rows(root: Path) -> pl.DataFrame:
    """Every prediction row read file by file with pyarrow, keys parsed from the paths, the columns format 2
    derives computed with NumPy: no DuckDB. Columns: layout.SCALAR_COLUMNS and the partition keys."""
    frames = []
    for part in sorted((root / layout.PREDICTIONS).glob("*/*/*/*.parquet")):
        keys = dict(p.split("=", 1) for p in part.relative_to(root / layout.PREDICTIONS).parts[:3])
        table = pq.read_table(part)
        if "classes" in table.column_names:
            for name, values in _derived(table).items():
                table = table.append_column(name, pa.array(values))
        frame = pl.from_arrow(table.select(list(layout.SCALAR_COLUMNS)))
        frames.append(frame.with_columns(pl.lit(keys["model_id"]).alias("model_id"),
                                         pl.lit(keys["corruption"]).alias("corruption"),
                                         pl.lit(int(keys["severity"])).alias("severity")))
    return pl.concat(frames)
