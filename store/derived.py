"""Files of a store derived from its prediction files through the catalog, rebuilt by `compute index`:
the by-sample index (store.sample_index) and the evaluation-matrix sums in completion markers written
before markers carried them. Extraction builds the index when its work list is complete.
"""

from __future__ import annotations

from pathlib import Path

from store import layout, reader, sample_index, writer
from store.catalog import Catalog


def build_sample_index(root: str | Path) -> Path | None:
    """(Re)write the index when it is stale; returns its path, or None for a store without predictions.

    Refuses (StoreError) a store holding a symbolic link; DuckDB reads only inside the store.
    """
    root = Path(root)
    files = reader.prediction_files(root)
    if not files:
        return None
    path = root / sample_index.INDEX / sample_index.FILE
    if sample_index.is_fresh(root):
        return path
    catalog = Catalog(root)
    try:  # the catalog's predictions view: the derived columns of format 2 are stored here
        table = catalog.arrow(f"SELECT {', '.join(sample_index.COLUMNS)} FROM predictions "  # noqa: S608 (constant SQL)
                              "ORDER BY sample_id, model_id, corruption, severity")
    finally:
        catalog.close()
    writer.write_parquet(root, table, path)
    writer.write_json(root, {"files": [str(p.relative_to(root)) for p in files], "rows": table.num_rows},
                      root / sample_index.INDEX / sample_index.INFO)
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
