"""Files of a store derived from its prediction files through the catalog, rebuilt by `compute index`:
the by-sample index (store.sample_index), the pre-aggregates (store.aggregates) and the evaluation-matrix
sums in completion markers written before markers carried them. Extraction builds them (build_all) when
its work list is complete. Each derived file is written with its record (store.derived_record: inputs,
their rows, the digest of its definition), which alone decides whether it is fresh.
"""

from __future__ import annotations

from pathlib import Path

from store import aggregates, derived_record, layout, reader, sample_index, writer
from store.catalog import Catalog

# DuckDB memory while building: the by-sample index sorts every row (100M rows: ~8 GB), spilling past this.
BUILD_MEMORY = "3GB"


def input_rows(catalog: Catalog) -> int:
    """The rows of the prediction files the catalog reads (its partition_summary: markers or aggregates)."""
    rows = catalog.query("SELECT sum(rows)::BIGINT AS n FROM partition_summary", name="derived.input_rows")
    return int(rows["n"][0] or 0)


def build_sample_index(root: str | Path) -> Path | None:
    """(Re)write the index and its record (store.derived_record) when it is not fresh; returns its path, or
    None for a store without predictions. Streamed: sorted by DuckDB within BUILD_MEMORY (spilling to the
    store's _tmp/), written batch by batch.

    Refuses (StoreError) a store holding a symbolic link; DuckDB reads only inside the store.
    """
    root = Path(root)
    path = root / layout.INDEX / layout.BY_SAMPLE
    catalog = Catalog(root, memory_limit=BUILD_MEMORY)  # lists the partitions and judges the index, once
    try:  # the catalog's predictions view: the derived columns of format 2 are stored here
        if not catalog.partition_files:
            return None
        if catalog.has_sample_index:
            return path
        derived_record.forget(root, layout.BY_SAMPLE_RECORD)
        schema = catalog.arrow(f"{sample_index.SQL} LIMIT 0", name="sample_index.schema").schema
        rows = writer.write_parquet_batches(root, schema, catalog.batches(sample_index.SQL, writer.ROW_GROUP,
                                                                          name="sample_index"), path)
        derived_record.write(root, layout.BY_SAMPLE_RECORD, inputs=catalog.inputs, rows=input_rows(catalog),
                             definition=sample_index.definition(), outputs={layout.BY_SAMPLE: rows})
    finally:
        catalog.close()
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
                                  "WHERE model_id = ? AND corruption = ? AND severity = ?", list(keys.values()), name="summarize_markers")
            summary = writer.partition_summary({name: table.column(name).to_numpy() for name in columns})
            writer.write_json(root, {"rows": marker["rows"], "bytes": marker["bytes"], **summary},
                       reader.marker_path(root, **keys))
    finally:
        catalog.close()
    return len(stale)


def build_aggregates(root: str | Path) -> list[Path]:
    """(Re)write every pre-aggregate (store.aggregates) and their record when they are not fresh; returns
    their paths, or [] for a store without predictions. Each is its definition's answer, computed by a
    catalog that found no fresh files to read (so it runs the definitions), bit strings stored as BLOB."""
    root = Path(root)
    paths = [aggregates.path(root, name) for name in aggregates.NAMES]
    catalog = Catalog(root)  # lists the partitions and judges the stored files, once
    rows = {}
    try:
        if not catalog.partition_files:
            return []
        if catalog.has_aggregates:
            return paths
        derived_record.forget(root, layout.AGGREGATES_RECORD)  # no reader pairs the old record with new files
        for name, target in zip(aggregates.NAMES, paths, strict=True):
            casts = ", ".join(f"{c}::BLOB AS {c}" for c in aggregates.BIT_COLUMNS.get(name, ()))
            table = catalog.arrow(f"SELECT *{f' REPLACE ({casts})' if casts else ''} FROM {name} "  # noqa: S608 (constant SQL)
                                  "ORDER BY ALL", name=f"aggregates.{name}")
            writer.write_parquet(root, table, target)
            rows[name] = table.num_rows
        derived_record.write(root, layout.AGGREGATES_RECORD, inputs=catalog.inputs, rows=input_rows(catalog),
                             definition=aggregates.definition(catalog.manifest["num_samples"]),
                             outputs={target.name: rows[name] for name, target in zip(aggregates.NAMES, paths,
                                                                                        strict=True)})
    finally:
        catalog.close()
    return paths


def build_all(root: str | Path) -> tuple[int, Path | None, list[Path]]:
    """Everything derived, in order (the aggregates read the by-sample index): (markers upgraded, the
    by-sample index's path, the pre-aggregates' paths)."""
    return summarize_markers(root), build_sample_index(root), build_aggregates(root)
