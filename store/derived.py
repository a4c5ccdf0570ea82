"""Files of a store derived from its prediction files through the catalog, rebuilt by `compute index`:
the by-sample index (store.sample_index), the pre-aggregates (store.aggregates) and the evaluation-matrix
sums in completion markers written before markers carried them. Extraction builds them (build_all) when
its work list is complete. Each derived file is written with its record (store.derived_record: inputs,
their rows, the digest of its definition), which alone decides whether it is fresh.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import duckdb
from tqdm import tqdm

from store import aggregates, derived_record, layout, reader, sample_index, serving, writer
from store.catalog import Catalog, read_predictions

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


def build_serving(root: str | Path, progress: bool = True) -> Path | None:
    """(Re)write the serving copy when it is not fresh, under the store's lock: two shards that complete the
    store at once build it once (the second finds it fresh); see _build_serving."""
    with writer.locked(root):
        return _build_serving(root, progress)


def _build_serving(root: str | Path, progress: bool = True) -> Path | None:
    """(Re)write the serving copy (store.serving) and its record when it is not fresh; returns its path, or
    None for a store without predictions.

    Written setting by setting (each setting's rows sorted by model and sample, with the reference's
    columns) into index/serving.partial.duckdb, which records which settings are complete and from which
    inputs: a rerun on the same inputs resumes after the last complete setting (the rows of one cut off
    halfway are deleted first), other inputs start it again. Complete, it is renamed into place and
    recorded. `progress`: a bar on stderr.
    """
    root = Path(root)
    target, partial = root / layout.INDEX / layout.SERVING, root / layout.INDEX / layout.SERVING_PARTIAL
    catalog = Catalog(root)  # lists the partitions and judges the copy, once
    try:
        if not catalog.partition_files:
            return None
        if catalog.has_serving:
            return target
        references = catalog.query("SELECT model_id, reference_model_id FROM models",
                                   name="serving.references").rows()
        inputs, rows = catalog.inputs, input_rows(catalog)
    finally:
        catalog.close()
    derived_record.forget(root, layout.SERVING_RECORD)  # no reader pairs the old record with a new copy
    definition = serving.definition(references)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        total = _write_serving(root, partial, inputs, definition, progress)
    except (duckdb.Error, ValueError) as error:  # DuckDB's own write errors are not OSErrors: a full disk is one
        if "No space left on device" not in str(error):
            raise
        _remove_database(partial)  # nothing half-built is left on the full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(partial)) from None
    os.replace(partial, target)
    derived_record.write(root, layout.SERVING_RECORD, inputs=inputs, rows=rows, definition=definition,
                         outputs={layout.SERVING: total}, sizes={layout.SERVING: target.stat().st_size})
    return target


def _write_serving(root: Path, partial: Path, inputs: derived_record.Inputs, definition: str,
                   progress: bool) -> int:
    """Build (or resume) the serving copy in `partial`; returns its row count (see build_serving)."""
    built = f"{serving.BUILD_ALIAS}.{serving.TABLE}"
    done = f"{serving.BUILD_ALIAS}.settings_done"
    for attempt in (0, 1):  # a partial copy of other inputs (or unreadable) is started again, once
        try:
            catalog = Catalog(root, memory_limit=BUILD_MEMORY, serving_build=partial)
        except duckdb.Error:  # a partial copy DuckDB cannot open (cut off mid-write): start again
            if attempt:
                raise
            _remove_database(partial)
            continue
        try:
            catalog.query(f"CREATE TABLE IF NOT EXISTS {serving.BUILD_ALIAS}.build (inputs VARCHAR, "
                          "definition VARCHAR)", name="serving.build_table")
            found = catalog.query(f"SELECT * FROM {serving.BUILD_ALIAS}.build", name="serving.build_of").rows()  # noqa: S608 (constant SQL)
            if found and found != [(inputs.digest, definition)] and attempt == 0:
                raise _StartAgain
            if not found:
                catalog.query(f"INSERT INTO {serving.BUILD_ALIAS}.build VALUES (?, ?)", [inputs.digest, definition],  # noqa: S608 (constant SQL)
                              name="serving.build_record")
            files = _files_by_setting(catalog.root, catalog.partition_files)
            first = min(files)
            sql = serving.SETTING_SQL.format(source=read_predictions(files[first]))
            catalog.query(f"CREATE TABLE IF NOT EXISTS {built} AS SELECT * FROM ({sql}) LIMIT 0",  # noqa: S608
                          [[_setting_text(first)]], name="serving.schema")
            catalog.query(f"CREATE TABLE IF NOT EXISTS {done} (corruption VARCHAR, severity INTEGER)",
                          name="serving.done_table")
            catalog.query(f"DELETE FROM {built} p WHERE NOT EXISTS (SELECT 1 FROM {done} d "  # noqa: S608
                          "WHERE d.corruption = p.corruption AND d.severity = p.severity)", name="serving.cut_off")
            complete = set(catalog.query(f"SELECT corruption, severity FROM {done}", name="serving.done_settings").rows())  # noqa: S608 (constant SQL)
            settings = [setting for setting in sorted(files) if setting not in complete]
            rows = dict(((c, s), n) for c, s, n in catalog.query(
                "SELECT corruption, severity, sum(rows)::BIGINT FROM partition_summary GROUP BY ALL",
                name="serving.setting_rows").rows())
            with tqdm(total=len(settings), desc="serving copy", unit="setting", disable=not progress) as bar:
                for step in _steps(settings, rows):
                    sql = serving.SETTING_SQL.format(source=read_predictions([f for s in step for f in files[s]]))
                    catalog.query(f"INSERT INTO {built} {sql}", [[_setting_text(s) for s in step]],  # noqa: S608
                                  name="serving.settings")
                    catalog.query(f"INSERT INTO {done} SELECT unnest(?), unnest(?)", [[c for c, _ in step],  # noqa: S608
                                  [s for _, s in step]], name="serving.done")
                    bar.update(len(step))
            total = int(catalog.query(f"SELECT count(*) AS n FROM {built}", name="serving.count")["n"][0])  # noqa: S608
            catalog.query(f"CHECKPOINT {serving.BUILD_ALIAS}", name="serving.checkpoint")
        except _StartAgain:
            catalog.close()
            _remove_database(partial)
            continue
        finally:
            catalog.close()
        break
    return total


def _setting_text(setting: tuple[str, int]) -> str:
    """A setting as store.serving.SETTING_SQL names it: 'corruption/severity'."""
    return f"{setting[0]}/{setting[1]}"


def _steps(settings: list[tuple[str, int]], rows: dict[tuple[str, int], int]) -> list[list[tuple[str, int]]]:
    """The settings in order, cut into runs of at most serving.STEP_ROWS rows (a setting above it alone)."""
    steps: list[list[tuple[str, int]]] = []
    size = 0
    for setting in settings:
        count = rows.get(setting, 0)
        if not steps or size + count > serving.STEP_ROWS:
            steps.append([])
            size = 0
        steps[-1].append(setting)
        size += count
    return steps


def _files_by_setting(root: Path, files: list[Path]) -> dict[tuple[str, int], list[Path]]:
    """The prediction files of each (corruption, severity), from their hive directory names."""
    by_setting: dict[tuple[str, int], list[Path]] = {}
    for path in files:
        keys = dict(part.split("=", 1) for part in path.relative_to(root).parts[1:-1])
        by_setting.setdefault((keys["corruption"], int(keys["severity"])), []).append(path)
    return by_setting


class _StartAgain(Exception):
    """The partial serving copy was built from other inputs: remove it and start again."""


def _remove_database(path: Path) -> None:
    """A DuckDB database file and its write-ahead log."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def build_all(root: str | Path) -> tuple[int, Path | None, Path | None, list[Path]]:
    """Everything derived, in order (the aggregates read the by-sample index, and every builder after the
    serving copy reads it): (markers upgraded, the serving copy's path, the by-sample index's path, the
    pre-aggregates' paths). First the records are reconciled with the files as listed now
    (store.derived_record.reconcile: files changed by hand make them stale, fresh ones name the store's
    generation, so the store opens without listing its partitions)."""
    with writer.locked(root):
        derived_record.reconcile(root)
    return summarize_markers(root), build_serving(root), build_sample_index(root), build_aggregates(root)
