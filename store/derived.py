"""Files of a store derived from its prediction files through the catalog, rebuilt by `compute index`:
the by-sample index (store.sample_index), the pre-aggregates (store.aggregates) and the evaluation-matrix
sums in completion markers written before markers carried them. Extraction builds them (build_all) when
its work list is complete.
"""

from __future__ import annotations

from pathlib import Path

from store import aggregates, layout, reader, sample_index, writer
from store.catalog import Catalog

# DuckDB memory while building: the by-sample index sorts every row (100M rows: ~8 GB), spilling past this.
BUILD_MEMORY = "3GB"


def build_sample_index(root: str | Path) -> Path | None:
    """(Re)write the index when it is stale; returns its path, or None for a store without predictions.
    Streamed: sorted by DuckDB within BUILD_MEMORY (spilling to the store's _tmp/), written batch by batch.

    Refuses (StoreError) a store holding a symbolic link; DuckDB reads only inside the store.
    """
    root = Path(root)
    files = reader.prediction_files(root)
    if not files:
        return None
    path = root / layout.INDEX / layout.BY_SAMPLE
    if sample_index.is_fresh(root):
        return path
    catalog = Catalog(root, memory_limit=BUILD_MEMORY)
    try:  # the catalog's predictions view: the derived columns of format 2 are stored here
        sql = (f"SELECT {', '.join(sample_index.COLUMNS)} FROM predictions "  # noqa: S608 (constant SQL)
               "ORDER BY sample_id, model_id, corruption, severity")
        schema = catalog.arrow(f"{sql} LIMIT 0").schema
        rows = writer.write_parquet_batches(root, schema, catalog.batches(sql, writer.ROW_GROUP), path)
    finally:
        catalog.close()
    writer.write_json(root, {"files": [str(p.relative_to(root)) for p in files], "rows": rows},
                      root / layout.INDEX / layout.BY_SAMPLE_INFO)
    return path


def summarize_markers(root: str | Path) -> int:
    """Add the evaluation-matrix sums to markers written before they existed; returns how many changed.

    The sums come from the catalog's predictions view (format 2 derives some of the columns). Only
    existing markers are refreshed (a file without a marker stays incomplete).
    """
    root = Path(root)
    stale = [marker for marker in reader.complete_partitions(root) if "sums" not in marker]
    if not stale:
        return 0
    catalog = Catalog(root)
    try:
        for marker in stale:
            keys = {k: marker[k] for k in ("model_id", "corruption", "severity")}
            columns = ["correct", "finite", *layout.SUMMARY_METRICS]
            table = catalog.arrow(f"SELECT {', '.join(columns)} FROM predictions "  # noqa: S608 (constant SQL)
                                  "WHERE model_id = ? AND corruption = ? AND severity = ?", list(keys.values()))
            summary = writer.partition_summary({name: table.column(name).to_numpy() for name in columns})
            writer.write_json(root, {"rows": marker["rows"], "bytes": marker["bytes"], **summary},
                       reader.marker_path(root, **keys))
    finally:
        catalog.close()
    return len(stale)


def build_aggregates(root: str | Path) -> list[Path]:
    """(Re)write every pre-aggregate (store.aggregates) when they are stale; returns their paths, or [] for a
    store without predictions. Each is its definition's answer, computed by a catalog that has no fresh
    files to read (so it runs the definitions), bit strings stored as BLOB."""
    root = Path(root)
    files = reader.prediction_files(root)
    if not files:
        return []
    paths = [aggregates.path(root, name) for name in aggregates.NAMES]
    if aggregates.is_fresh(root):
        return paths
    (root / layout.INDEX / layout.AGGREGATES_INFO).unlink(missing_ok=True)  # the catalog must not read old files
    catalog = Catalog(root)
    rows = {}
    try:
        for name, target in zip(aggregates.NAMES, paths, strict=True):
            casts = ", ".join(f"{c}::BLOB AS {c}" for c in aggregates.BIT_COLUMNS.get(name, ()))
            table = catalog.arrow(f"SELECT *{f' REPLACE ({casts})' if casts else ''} FROM {name} "  # noqa: S608 (constant SQL)
                                  "ORDER BY ALL")
            writer.write_parquet(root, table, target)
            rows[name] = table.num_rows
    finally:
        catalog.close()
    writer.write_json(root, {"files": [str(p.relative_to(root)) for p in files], "rows": rows},
                      root / layout.INDEX / layout.AGGREGATES_INFO)
    return paths


def build_all(root: str | Path) -> tuple[int, Path | None, list[Path]]:
    """Everything derived, in order (the aggregates read the by-sample index): (markers upgraded, the
    by-sample index's path, the pre-aggregates' paths)."""
    return summarize_markers(root), build_sample_index(root), build_aggregates(root)
