"""The DuckDB side of a store: views over its Parquet files, and the only place that runs SQL.

A `Catalog` owns one in-memory DuckDB database with these views:

    samples      samples.parquet
    models       models.parquet, plus dense_model_id (the dense model of the same architecture)
    predictions  predictions/**/part-*.parquet, hive-partitioned (model_id, corruption, severity)
    by_sample    the scalar prediction columns sorted by sample (store.sample_index), when fresh
    partition_summary  per partition: rows, correct, finite rows and metric sums (from the markers)
    rows         predictions joined with models, samples and the dense model's row for the same
                 (corruption, severity, sample): what user filters run against

The store is refused when it holds a symbolic link (store.confine), and the database is locked down before
the first view reads a file: file access only inside the store directory, no other external access,
configuration locked. So even SQL that slipped past `store.filters` could not
read or write other files, load extensions or change settings. Values are always bound parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from store import confine, sample_index, schema, writer


class QueryTimeout(RuntimeError):
    """A query ran past its time limit and was interrupted."""


_DUCK_TYPES = {pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN",
               pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR"}


def _empty_select(arrow_schema: pa.Schema) -> str:
    """A typed SELECT with no rows, so queries on a store without predictions return empty frames."""
    columns = []
    for f in arrow_schema:
        sql_type = (f"FLOAT[{f.type.list_size}]" if pa.types.is_fixed_size_list(f.type)
                    else _DUCK_TYPES[f.type])
        columns.append(f"CAST(NULL AS {sql_type}) AS {f.name}")
    return "SELECT " + ", ".join(columns) + " WHERE false"


class Catalog:
    """Read-only views over one store directory; every query returns a Polars frame."""

    def __init__(self, root: str | Path, threads: int | None = None) -> None:
        self.root = Path(root).resolve()
        confine.refuse_links(self.root)  # before any file of the store is read
        self.manifest = writer.read_manifest(self.root)
        self.num_classes = int(self.manifest["num_classes"])
        self._connection = duckdb.connect(":memory:")
        if threads:
            self._connection.execute(f"SET threads = {int(threads)}")
        # Parquet footers are read once per file and kept: later queries skip straight to the data.
        self._connection.execute("SET parquet_metadata_cache = true")
        self._lock_down()  # before the views: creating one reads its first file
        self._create_views()

    # -- set-up ---------------------------------------------------------------------------------
    def _create_views(self) -> None:
        con = self._connection
        for name, file, arrow_schema in (("samples", schema.SAMPLES, schema.SAMPLE_SCHEMA),
                                         ("models_raw", schema.MODELS, schema.MODEL_SCHEMA)):
            path = self.root / file
            # The store's own path, quoted by schema.sql_literal: not user input.
            body = (f"SELECT * FROM read_parquet({schema.sql_literal(path)})"  # noqa: S608
                    if path.exists() else _empty_select(arrow_schema))
            con.execute(f"CREATE VIEW {name} AS {body}")
        con.execute("""
            CREATE VIEW models AS
            SELECT m.*, (
                SELECT d.model_id FROM models_raw d
                WHERE d.method = 'dense' AND d.arch = m.arch
                ORDER BY (d.seed = m.seed) DESC, d.model_id LIMIT 1
            ) AS dense_model_id
            FROM models_raw m
        """)
        parts = writer.prediction_files(self.root)  # found once: a new Catalog sees new files
        self.partition_files = parts
        if parts:
            body = f"SELECT * FROM {schema.read_predictions(parts)}"  # noqa: S608 (store paths, quoted)
        else:
            empty = pa.schema([*schema.prediction_schema(self.num_classes),
                               pa.field("model_id", pa.string()), pa.field("corruption", pa.string()),
                               pa.field("severity", pa.int32())])
            body = _empty_select(empty)
        con.execute(f"CREATE VIEW predictions AS {body}")
        self._create_partition_summary(len(parts))
        self.has_sample_index = sample_index.is_fresh(self.root)
        if self.has_sample_index:
            index = self.root / sample_index.INDEX / sample_index.FILE
            con.execute(f"CREATE VIEW by_sample AS SELECT * FROM read_parquet({schema.sql_literal(index)})")  # noqa: S608
        con.execute("""
            CREATE VIEW rows AS
            SELECT p.*, m.arch, m.method, m.target_sparsity, m.sparsity, m.seed, s.label_name,
                   d.correct AS dense_correct, d.feature_norm AS dense_feature_norm,
                   d.angle_true AS dense_angle_true, d.margin AS dense_margin
            FROM predictions p
            JOIN models m USING (model_id)
            JOIN samples s USING (sample_id)
            LEFT JOIN predictions d
              ON d.model_id = m.dense_model_id AND d.corruption = p.corruption
             AND d.severity = p.severity AND d.sample_id = p.sample_id
        """)

    def _create_partition_summary(self, num_files: int) -> None:
        """View `partition_summary`: per (model, corruption, severity) rows, correct, finite and metric sums.

        Read from the completion markers (written with each partition) when every prediction file has a
        marker with sums: thousands of partitions then cost one small table, not a scan. Otherwise (a store
        from an older writer, or a file published without its marker) it is computed from the files.
        """
        sums = ", ".join(f"{name}_sum" for name in schema.SUMMARY_METRICS)
        try:  # a damaged marker (verify names it) costs a scan of the files, never the store
            markers = writer.complete_partitions(self.root)
            usable = num_files and len(markers) == num_files and all("sums" in m for m in markers)
            columns = {"model_id": ("VARCHAR", [m["model_id"] for m in markers]),
                       "corruption": ("VARCHAR", [m["corruption"] for m in markers]),
                       **{key: ("INTEGER" if key == "severity" else "BIGINT", [int(m[key]) for m in markers])
                          for key in ("severity", "rows", "correct", "finite")},
                       **{f"{name}_sum": ("DOUBLE", [float(m["sums"][name]) for m in markers])
                          for name in schema.SUMMARY_METRICS}} if usable else None
        except (OSError, ValueError, KeyError, TypeError):
            columns = None
        if columns:
            # A table from bound lists (not a registered Arrow object, whose first use imports pandas: a
            # second on a fresh server): query cursors see the database's tables only.
            select = ", ".join(f"unnest(${i})::{sql_type} AS {name}"
                               for i, (name, (sql_type, _)) in enumerate(columns.items(), start=1))
            self._connection.execute(f"CREATE TABLE partition_markers AS SELECT {select}",  # noqa: S608 (constant names)
                                     [values for _, values in columns.values()])
            body = f"SELECT model_id, corruption, severity, rows, correct, finite, {sums} FROM partition_markers"  # noqa: S608 (constant SQL)
        else:
            scanned = ", ".join(f"sum(CASE WHEN finite THEN {name} END)::DOUBLE AS {name}_sum"
                                for name in schema.SUMMARY_METRICS)
            body = (f"SELECT model_id, corruption, severity, count(*) AS rows, "  # noqa: S608 (constant SQL)
                    f"sum(correct::BIGINT) AS correct, count(*) FILTER (WHERE finite) AS finite, {scanned} "
                    "FROM predictions GROUP BY ALL")
        self._connection.execute(f"CREATE VIEW partition_summary AS {body}")

    def _lock_down(self) -> None:
        con = self._connection
        con.execute("SET allowed_directories = [?]", [str(self.root)])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    # -- queries --------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = (), timeout: float | None = None) -> pl.DataFrame:
        """Run one statement on a fresh cursor (thread-safe); interrupt it after `timeout` seconds."""
        cursor = self._connection.cursor()
        timer = threading.Timer(timeout, cursor.interrupt) if timeout else None
        try:
            if timer:
                timer.start()
            return cursor.sql(sql, params=list(params)).pl()
        except duckdb.InterruptException as error:
            raise QueryTimeout(f"query stopped after {timeout:.1f} s; narrow the filter") from error
        finally:
            if timer:
                timer.cancel()
            cursor.close()

    @property
    def by_sample(self) -> str:
        """The view to read for per-sample questions: the by-sample index when fresh, else predictions."""
        return "by_sample" if self.has_sample_index else "predictions"

    def close(self) -> None:
        self._connection.close()
