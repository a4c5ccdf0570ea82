"""A by-sample copy of the scalar prediction columns, sorted by sample_id, for fast sample drill-down.

The prediction files are partitioned by (model, corruption, severity): one sample's rows sit in every
file of the store. The index holds the same rows in one file sorted by sample, so a lookup reads one
row group. It is derived data: `build` writes it (extract and demo call it at the end), and the catalog
uses it only while it covers exactly the store's complete partitions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from store import reader, writer

INDEX = "index"
FILE = "by_sample.parquet"
INFO = "by_sample.json"
COLUMNS = ("sample_id", "model_id", "corruption", "severity", "label", "pred", "correct", "confidence",
           "p_true", "angle_true", "feature_norm", "margin", "loss")


def is_fresh(root: str | Path) -> bool:
    """True when the index exists, was built from exactly the store's current partition files, and its file
    opens with the recorded row count (a damaged index is stale: readers fall back, `build` rewrites it)."""
    root = Path(root)
    info = root / INDEX / INFO
    if not (info.is_file() and (root / INDEX / FILE).is_file()):
        return False
    try:
        recorded = json.loads(info.read_text())
        if not isinstance(recorded, dict) or recorded.get("files") != [
                str(p.relative_to(root)) for p in reader.prediction_files(root)]:
            return False
        return pq.ParquetFile(root / INDEX / FILE).metadata.num_rows == recorded.get("rows")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, pa.ArrowException):
        return False


def build(root: str | Path) -> Path | None:
    """(Re)write the index when it is stale; returns its path, or None for a store without predictions.

    Refuses (StoreError) a store holding a symbolic link; DuckDB reads only inside the store.
    """
    root = Path(root)
    files = reader.prediction_files(root)
    if not files:
        return None
    path = root / INDEX / FILE
    if is_fresh(root):
        return path
    from store.catalog import Catalog  # the catalog uses this module to find the index: import late

    catalog = Catalog(root)
    try:  # the catalog's predictions view: the derived columns of format 2 are stored here
        table = catalog.arrow(f"SELECT {', '.join(COLUMNS)} FROM predictions "  # noqa: S608 (constant SQL)
                              "ORDER BY sample_id, model_id, corruption, severity")
    finally:
        catalog.close()
    writer.write_parquet(root, table, path)
    writer.write_json(root, {"files": [str(p.relative_to(root)) for p in files], "rows": table.num_rows},
                      root / INDEX / INFO)
    return path
