"""Pre-aggregates: what a view needs of every prediction row, computed once and stored in `index/`.

On a study of 100 million rows a view that reads every row takes seconds; these small tables answer the
same questions from a few thousand rows (as Mosaic does with DuckDB):

    partition_bits  per (model_id, corruption, severity): samples, correct, and two bit strings over the
                    store's sample ids (bit i = sample i): `present` (a row exists) and `right_bits`
                    (correct); pairing two partitions is a popcount of an AND (the evaluation matrix's
                    paired counts against the reference)
    sample_sums     per (sample_id, severity): rows, correct, min_margin, max_angle_true over every model
                    and corruption (the "robust everywhere" preset for any severity bound)
    class_sums      per (model_id, corruption, severity, label): rows, correct, finite rows and the sums of
                    layout.SUMMARY_METRICS over finite rows; summed over labels it is the catalog's
                    partition_summary (the evaluation matrix), so a fresh store opens without reading one
                    completion marker per partition (10,080 files on the 100M-row study)

Each one has exactly one definition, the SQL below over the catalog's views. The catalog reads the
stored files when their record is fresh (store.derived_record: built by this definition from exactly
the store's current partition files), and otherwise
runs the definition itself: the same answer, more slowly, and it says how to build them
(`python -m compute index --store DIR`). store.derived.build_aggregates writes them; extraction calls it
when the store is complete, `compute index` rebuilds them.

A record says what the files were built from, not that they are whole: a file rewritten with its rows
(bit strings cut to half length, counts changed) would still be called fresh. So the files are checked
against each other and the partitions when opened (`damage`: bit string lengths against the store's
samples, counts against the bits they count, one row per partition, the class and sample sums against
the partition counts; a few thousand small rows, never the predictions). A damaged file is not fresh:
never served, named by verify, rebuilt by `compute index`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from store import derived_record, layout, reader

VERSION = 1  # raise when they are computed or stored another way than the SQL below says
NAMES = ("partition_bits", "sample_sums", "class_sums")
BIT_COLUMNS = {"partition_bits": ("present", "right_bits")}  # BIT in DuckDB, BLOB in the Parquet file
HINT = "build the pre-aggregates with: python -m compute index --store {root}"


def path(root: str | Path, name: str) -> Path:
    return Path(root) / layout.INDEX / f"{name}.parquet"


def metric_sums() -> str:
    """SQL aggregates: every layout.SUMMARY_METRICS column summed over finite rows, as `<metric>_sum`."""
    return ", ".join(f"sum(CASE WHEN finite THEN {m} END)::DOUBLE AS {m}_sum" for m in layout.SUMMARY_METRICS)


def definitions(num_samples: int, by_sample: str) -> dict[str, str]:
    """The SQL of every pre-aggregate over the catalog's views; `by_sample` is the view to scan for
    per-sample questions (the by-sample index when fresh: one file instead of thousands)."""
    last = max(int(num_samples) - 1, 0)  # bit strings cover sample ids 0..last (the writer's row positions)
    return {
        "partition_bits": f"""
            SELECT model_id, corruption, severity, count(*) AS samples, sum(correct::BIGINT)::BIGINT AS correct,
                   bitstring_agg(sample_id::INTEGER, 0, {last}) AS present,
                   bitstring_agg(CASE WHEN correct THEN sample_id::INTEGER END, 0, {last}) AS right_bits
            FROM {by_sample} GROUP BY model_id, corruption, severity""",  # noqa: S608 (constant SQL)
        "sample_sums": f"""
            SELECT sample_id, severity, count(*) AS rows, sum(correct::BIGINT)::BIGINT AS correct,
                   min(margin) AS min_margin, max(angle_true) AS max_angle_true
            FROM {by_sample} GROUP BY sample_id, severity""",  # noqa: S608 (constant SQL)
        "class_sums": f"""
            SELECT model_id, corruption, severity, label, count(*) AS rows, sum(correct::BIGINT)::BIGINT AS correct,
                   count(*) FILTER (WHERE finite) AS finite, {metric_sums()}
            FROM predictions GROUP BY model_id, corruption, severity, label""",  # noqa: S608 (constant SQL)
    }


def stored_view(root: str | Path, name: str, quote) -> str:
    """SQL reading the stored file of `name`, bit strings cast back from BLOB (`quote` makes a path an SQL
    literal: store.vocabulary.sql_literal)."""
    casts = ", ".join(f"{column}::BIT AS {column}" for column in BIT_COLUMNS.get(name, ()))
    replace = f" REPLACE ({casts})" if casts else ""
    return f"SELECT *{replace} FROM read_parquet({quote(path(root, name))})"  # noqa: S608 (store path, quoted)


def definition(num_samples: int) -> str:
    """The digest of what computes the pre-aggregates of a store of `num_samples` samples (their record's
    `definition`): the version, every definition's SQL and the columns stored as BLOB."""
    sql = definitions(num_samples, "by_sample")
    return derived_record.digest(layout.AGGREGATES_RECORD, VERSION, *(f"{name}: {sql[name]}" for name in NAMES), BIT_COLUMNS)


def is_fresh(root: str | Path, inputs: derived_record.Inputs | None = None, num_samples: int | None = None) -> bool:
    """True when the pre-aggregates are fresh (store.derived_record.is_fresh) for the store's prediction
    files (`inputs`, else listed here) and its `num_samples` (else read from the manifest), and whole
    (`damage`): the catalog passes what it read once."""
    return state(root, inputs, num_samples) == (True, None)


def state(root: str | Path, inputs: derived_record.Inputs | None = None,
          num_samples: int | None = None) -> tuple[bool, str | None]:
    """(whether the record calls the pre-aggregates fresh, what is damaged in them when it does, else None)."""
    if num_samples is None:
        num_samples = int(reader.read_manifest(root)["num_samples"])
    inputs = inputs or derived_record.Inputs.current(root)
    if not derived_record.is_fresh(root, layout.AGGREGATES_RECORD, definition=definition(num_samples), inputs=inputs):
        return False, None
    return True, damage(root, num_samples, inputs)


def _partitions(inputs: derived_record.Inputs) -> int:
    """How many (model, corruption, severity) partitions the prediction files make (a folder each)."""
    return len({file.rpartition(os.sep)[0] for file in inputs.files})


def damage(root: str | Path, num_samples: int, inputs: derived_record.Inputs) -> str | None:
    """What is wrong with the stored pre-aggregates of a store of `num_samples` samples whose prediction
    files are `inputs`, naming the file relative to the store, or None when they agree with each other and
    the partitions: every bit string is num_samples bits long (ceil(num_samples / 8) bytes as stored) and
    holds as many ones as the count beside it, correct <= samples <= num_samples, one row per partition,
    and class_sums and sample_sums add up to the same rows and right answers per partition."""
    try:
        return _damage(Path(root), int(num_samples), inputs)
    except (KeyError, TypeError, ValueError, OSError, pa.ArrowException) as error:  # a foreign or unreadable file
        return f"{layout.INDEX}/partition_bits.parquet: the pre-aggregates cannot be checked ({error})"


def _lengths_and_ones(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Per bit string of a binary column: its bytes (-1 for a null) and how many bits are set, counted over
    the column's data buffer at once (a 100M-row study's 20,160 strings of 1,250 bytes in milliseconds)."""
    array = column.combine_chunks().cast(pa.large_binary())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if array.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    counted = np.bitwise_count(data[offsets[0]:offsets[-1]]) if len(array) else np.zeros(0, np.uint8)
    starts = offsets[:-1] - offsets[0]
    ones = np.zeros(len(array), dtype=np.int64)
    filled = lengths > 0  # reduceat gives an empty segment its next element: only non-empty ones are summed
    if len(array) and (lengths == lengths[0]).all() and lengths[0] > 0:  # whole strings: one row each, summed
        ones = counted.reshape(len(array), int(lengths[0])).sum(axis=1, dtype=np.int64)
    elif filled.any():
        ones[filled] = np.add.reduceat(counted, starts[filled], dtype=np.int64)
    if array.null_count:
        lengths = np.where(array.is_null().to_numpy(zero_copy_only=False), -1, lengths)
    return lengths, ones


def _damage(root: Path, num_samples: int, inputs: derived_record.Inputs) -> str | None:
    try:
        # reader.read_table: pq.read_table's dataset layer imports pandas, on every fresh server's first page
        bits = reader.read_table(path(root, "partition_bits"))
        classes = reader.read_table(path(root, "class_sums"), columns=["model_id", "corruption", "severity", "rows",
                                                                       "correct"])
        per_sample = reader.read_table(path(root, "sample_sums"), columns=["sample_id", "rows", "correct"])
    except (OSError, ValueError) as error:
        return f"{layout.INDEX}/: a pre-aggregate cannot be read ({error})"
    where = f"{layout.INDEX}/partition_bits.parquet"
    if bits.num_rows != _partitions(inputs):
        return f"{where}: {bits.num_rows} rows for {_partitions(inputs)} partitions"
    width = (int(num_samples) + 7) // 8
    samples, correct = bits.column("samples").to_pylist(), bits.column("correct").to_pylist()
    for column, counts in (("present", samples), ("right_bits", correct)):
        lengths, ones = _lengths_and_ones(bits.column(column))
        # bitstring_agg over no set bits is null: a partition with no right answer (or no rows) has none
        lengths = np.where((lengths < 0) & (np.array(counts, dtype=object) == 0), width, lengths)
        for row in np.flatnonzero((lengths != width) | (ones != np.array(counts, dtype=object))):
            if lengths[row] != width:
                found = "null" if lengths[row] < 0 else f"{lengths[row] * 8} bits"
                return (f"{where}: row {row}: {column} is {found} long, the store has {num_samples} samples "
                        f"({width} bytes)")
            return f"{where}: row {row}: {column} holds {ones[row]} ones, its count says {counts[row]}"
    if any(r is None or c is None or not 0 <= c <= r <= num_samples for r, c in zip(samples, correct, strict=True)):
        return f"{where}: a row counts more right answers than samples, or more samples than the store has"
    keys = ["model_id", "corruption", "severity"]
    # Polars, not pyarrow's group_by/join: those load Acero, whose import pulls in pandas (a fresh server)
    summed = pl.from_arrow(classes).group_by(keys).agg(pl.col("rows").sum().alias("rows_sum"),
                                                       pl.col("correct").sum().alias("correct_sum"))
    joined = pl.from_arrow(bits.select([*keys, "samples", "correct"])).join(summed, on=keys, how="full",
                                                                            coalesce=True)
    if joined.height != bits.num_rows or not (
            (joined["samples"] == joined["rows_sum"]).all() and (joined["correct"] == joined["correct_sum"]).all()):
        return f"{layout.INDEX}/class_sums.parquet: its rows and right answers disagree with partition_bits"
    total_rows, total_correct = sum(samples), sum(correct)
    ids = per_sample.column("sample_id")
    if (pc.sum(per_sample.column("rows")).as_py() or 0) != total_rows or (
            pc.sum(per_sample.column("correct")).as_py() or 0) != total_correct or (
            per_sample.num_rows and not 0 <= pc.min(ids).as_py() <= pc.max(ids).as_py() < num_samples):
        return f"{layout.INDEX}/sample_sums.parquet: its rows and right answers disagree with partition_bits"
    return None
