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
"""

from __future__ import annotations

from pathlib import Path

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
    files (`inputs`, else listed here) and its `num_samples` (else read from the manifest): the catalog
    passes what it read once."""
    if num_samples is None:
        num_samples = int(reader.read_manifest(root)["num_samples"])
    return derived_record.is_fresh(root, layout.AGGREGATES_RECORD, definition=definition(num_samples),
                                   inputs=inputs or derived_record.Inputs.current(root))
