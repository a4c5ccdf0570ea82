"""A by-sample copy of the scalar prediction columns, sorted by sample_id, for fast sample drill-down.

The prediction files are partitioned by (model, corruption, severity): one sample's rows sit in every
file of the store. The index holds the same rows in one file sorted by sample, so a lookup reads one
row group. It is derived data: `store.derived.build_sample_index` writes it and its record (every
extraction calls it at the end, `compute index` rebuilds it), and the catalog uses it only while its
record is fresh (store.derived_record: the same prediction files, the same definition).
"""

from __future__ import annotations

from pathlib import Path

from store import derived_record, layout

COLUMNS = ("sample_id", "model_id", "corruption", "severity", "label", "pred", "correct", "confidence",
           "p_true", "angle_true", "feature_norm", "margin", "loss")
VERSION = 1  # raise when the index is computed another way than SQL says
SQL = (f"SELECT {', '.join(COLUMNS)} FROM predictions "  # noqa: S608 (constant SQL)
       "ORDER BY sample_id, model_id, corruption, severity")


def definition() -> str:
    """The digest of what computes the index (its record's `definition`)."""
    return derived_record.digest(layout.BY_SAMPLE_RECORD, VERSION, SQL)


def is_fresh(root: str | Path, inputs: derived_record.Inputs | None = None) -> bool:
    """True when the index is fresh (store.derived_record.is_fresh) for the store's prediction files
    (`inputs`: the catalog passes what it listed once; else listed here)."""
    return derived_record.is_fresh(root, layout.BY_SAMPLE_RECORD, definition=definition(),
                                   inputs=inputs or derived_record.Inputs.current(root))
