"""Answers `compute index` stores per setting so a page reads a few small rows instead of computing them:
the agreement of every model pair in every setting (index/agreement.parquet; analysis.agreement reads it
while its record is fresh). The bootstrap of kappa's interval is seeded, so the stored rows are exactly
what the page would compute (tests/compute/test_stored_answers.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from tqdm import tqdm

from analysis import agreement
from store import derived_record, layout, writer
from store.catalog import Catalog
from store.derived import input_rows


def build_agreement(root: str | Path, progress: bool = True) -> Path | None:
    """(Re)write index/agreement.parquet and its record when it is not fresh: model_agreement of every
    setting, with its corruption and severity; returns its path, or None for a store without predictions."""
    root = Path(root)
    path = root / layout.INDEX / layout.AGREEMENT
    catalog = Catalog(root)  # the serving copy when it is fresh: one setting's rows at a time
    try:
        if not catalog.partition_files:
            return None
        definition = agreement.stored_definition()
        if catalog.is_fresh(layout.AGREEMENT_RECORD, definition):
            return path
        derived_record.forget(root, layout.AGREEMENT_RECORD)
        settings = catalog.query("SELECT DISTINCT corruption, severity FROM partition_summary ORDER BY ALL",
                                 name="stored_answers.settings").rows()
        frames = [agreement.computed_agreement(catalog, corruption, severity).with_columns(
                      pl.lit(corruption, pl.String).alias("corruption"), pl.lit(severity, pl.Int32).alias("severity"))
                  for corruption, severity in tqdm(settings, desc="agreement", unit="setting", disable=not progress)]
        table = pl.concat(frames, how="vertical_relaxed").to_arrow()
        writer.write_parquet(root, table, path)
        derived_record.write(root, layout.AGREEMENT_RECORD, inputs=catalog.inputs, rows=input_rows(catalog),
                             definition=definition, outputs={layout.AGREEMENT: table.num_rows})
    finally:
        catalog.close()
    return path
