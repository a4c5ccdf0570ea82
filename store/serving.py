"""The serving copy: every prediction row of the store in one DuckDB database file, `index/serving.duckdb`.

The Parquet partitions stay the store's write and exchange format. On a study of 10,080 partitions every
statement over them binds a `read_parquet` of 10,080 files (each checked, its hive keys parsed, the filter
tested against it), which costs more than the rows. The serving copy holds the same rows in DuckDB's
native format, one table `predictions` sorted by setting (corruption, severity), model and sample, so a
page's question about one setting reads the few row groups of that setting, and beside each row its
reference model's columns (the model's base: reference_correct, reference_feature_norm,
reference_angle_true, reference_margin), so the filters' `rows` view needs no self-join.

It is a derived file (store.derived_record): its record names the prediction files it was built from and
its definition, whose digest includes every model's reference (a base changed in models.parquet makes
the copy stale). The catalog attaches it read-only when it is fresh and opens; otherwise (missing, stale,
damaged) it reads the Parquet files, with the same answers, and says so (`Catalog.serving_hint`).
`store.derived.build_serving` writes it setting by setting into `index/serving.partial.duckdb` (a rerun
resumes after the last complete setting; progress on stderr), then renames it into place and records it.
"""

from __future__ import annotations

from collections.abc import Sequence

from store import derived_record, layout

VERSION = 2  # raise when the copy is computed or laid out another way than the SQL below says
TABLE = "predictions"  # the table of the serving database
ALIAS = "serving"  # the name the catalog attaches it under
BUILD_ALIAS = "serving_build"  # the name the builder's catalog attaches the partial file under
REFERENCE_COLUMNS = ("reference_correct", "reference_feature_norm", "reference_angle_true", "reference_margin")
HINT = ("the serving copy (index/serving.duckdb) is missing or stale, so pages read the Parquet partitions "
        "(slower on large studies); build it with: python -m compute index --store {root}")

# Some settings' rows, in the serving order, each with its reference model's row of the same setting and
# sample (the catalog's `rows` view joins the same): $1 the settings as 'corruption/severity' texts;
# {source} reads those settings' partition files (store.catalog.read_predictions of them: binding a view
# over every file of the store, 10,080 on the study-sized one, would cost more than the settings' rows).
SETTING_SQL = """
    WITH p AS (SELECT * FROM {source} WHERE list_contains($1, corruption || '/' || severity)),
         reference AS (SELECT model_id, corruption, severity, sample_id, pred = label AS correct, feature_norm,
                              angle_true, margin
                       FROM p)
    SELECT p.*, d.correct AS reference_correct, d.feature_norm AS reference_feature_norm,
           d.angle_true AS reference_angle_true, d.margin AS reference_margin
    FROM p LEFT JOIN models m ON m.model_id = p.model_id
    LEFT JOIN reference d ON d.model_id = m.reference_model_id AND d.corruption = p.corruption
     AND d.severity = p.severity AND d.sample_id = p.sample_id
    ORDER BY p.corruption, p.severity, p.model_id, p.sample_id
"""
# Rows one statement of the build copies at most (more when one setting holds more): a study's settings one
# or two at a time, within the builder's memory; a small store's in one statement, not one per setting.
STEP_ROWS = 2_000_000


def definition(references: Sequence[tuple[str, str | None]]) -> str:
    """The digest of what computes the copy: its version, SQL and every (model_id, reference_model_id)."""
    return derived_record.digest(layout.SERVING_RECORD, VERSION, SETTING_SQL,
                                 *(f"{model} -> {reference}" for model, reference in sorted(references,
                                                                                            key=lambda r: r[0])))
