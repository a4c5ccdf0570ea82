"""A by-sample copy of the scalar prediction columns, sorted by sample_id, for fast sample drill-down.

The prediction files are partitioned by (model, corruption, severity): one sample's rows sit in every
file of the store. The index holds the same rows in one file sorted by sample, so a lookup reads one
row group. It is derived data: `store.derived.build_sample_index` writes it (every extraction calls it
at the end, `compute index` rebuilds it), and the catalog
uses it only while it covers exactly the store's complete partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from store import layout, reader
from store.layout import StoreError

COLUMNS = ("sample_id", "model_id", "corruption", "severity", "label", "pred", "correct", "confidence",
           "p_true", "angle_true", "feature_norm", "margin", "loss")


def is_fresh(root: str | Path, files: Sequence[Path] | None = None) -> bool:
    """True when the index exists, was built from exactly the store's current partition files (`files`, the
    store's listing when the caller has it: listing 10,000 partitions takes seconds), and its file opens
    with the recorded row count (a damaged index is stale: readers fall back, `build` rewrites it)."""
    root = Path(root)
    info = root / layout.INDEX / layout.BY_SAMPLE_INFO
    if not (info.is_file() and (root / layout.INDEX / layout.BY_SAMPLE).is_file()):
        return False
    try:
        recorded = reader.read_json(info)
        if not built_from_current_files(root, recorded, files):
            return False
        return reader.parquet_metadata(root / layout.INDEX / layout.BY_SAMPLE).num_rows == recorded.get("rows")
    except StoreError:
        return False


def built_from_current_files(root: Path, recorded: object, files: Sequence[Path] | None = None) -> bool:
    """True when a derived file's record (`{"files": [...], ...}`) lists exactly the store's current
    prediction files (`files`, else listed here): a file added or removed since makes it stale."""
    files = reader.prediction_files(root) if files is None else files
    return isinstance(recorded, dict) and recorded.get("files") == [str(p.relative_to(root)) for p in files]
