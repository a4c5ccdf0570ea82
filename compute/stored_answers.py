"""Answers `compute index` stores per setting so a page reads a few small rows instead of computing them:
the agreement of every model pair in every setting (index/agreement.parquet; analysis.agreement reads it
while its record is fresh). The bootstrap of kappa's interval is seeded, so the stored rows are exactly
what the page would compute (tests/compute/test_stored_answers.py). Likewise, each read by its named
query while fresh: the PIE counts and every sample's pruned_wrong (analysis.presets: pie_counts,
pruning_fragile for any k), every model's local-geometry bins and each model's delta bins against its
reference (analysis.queries: setting_bins, pair_delta_bins at the page's grid over every class). The
delta bins of other pairs are computed on request: 105 models make 5,460 pairs per setting, while the
page's default comparison is a model's reference."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
from tqdm import tqdm

from analysis import agreement, presets, queries
from store import derived_record, layout, writer
from store.catalog import Catalog
from store.derived import input_rows


def build_agreement(root: str | Path, progress: bool = True) -> Path | None:
    """(Re)write index/agreement.parquet and its record when it is not fresh: model_agreement of every
    setting, with its corruption and severity; returns its path, or None for a store without predictions."""
    return build_all(root, progress, (layout.AGREEMENT_RECORD,))[layout.AGREEMENT_RECORD]


def _agreement(root: Path, catalog: Catalog, settings: list[tuple], progress: bool) -> Path:
    path = root / layout.INDEX / layout.AGREEMENT
    definition = agreement.stored_definition()
    if catalog.is_fresh(layout.AGREEMENT_RECORD, definition):
        return path
    derived_record.forget(root, layout.AGREEMENT_RECORD)
    frames = [agreement.computed_agreement(catalog, corruption, severity).with_columns(
                  pl.lit(corruption, pl.String).alias("corruption"), pl.lit(severity, pl.Int32).alias("severity"))
              for corruption, severity in tqdm(settings, desc="agreement", unit="setting", disable=not progress)]
    table = pl.concat(frames, how="vertical_relaxed").to_arrow()
    writer.write_parquet(root, table, path)
    derived_record.write(root, layout.AGREEMENT_RECORD, inputs=catalog.inputs, rows=input_rows(catalog),
                         definition=definition, outputs={layout.AGREEMENT: table.num_rows})
    return path


def _each_severity(answer: Callable[[Catalog, str, int], pl.DataFrame]) -> Callable[..., pl.DataFrame]:
    """An answer per setting as one per corruption: its rows in each of the corruption's `severities`, with
    the setting's columns."""
    def rows(catalog: Catalog, corruption: str, severities: Sequence[int]) -> pl.DataFrame:
        return pl.concat([answer(catalog, corruption, severity).with_columns(
            pl.lit(corruption, pl.String).alias("corruption"), pl.lit(severity, pl.Int32).alias("severity"))
            for severity in severities])
    return rows


# Per stored answer besides agreement: its file, its definition (analysis) and one corruption's rows in its
# severities, with corruption and severity columns (the bins ask DuckDB once per corruption).
_PER_SETTING: dict[str, tuple[str, Callable[[Catalog], str], Callable[..., pl.DataFrame]]] = {
    layout.PIE_COUNTS_RECORD: (layout.PIE_COUNTS,
                               lambda catalog: presets.stored_definition(catalog, layout.PIE_COUNTS_RECORD),
                               _each_severity(presets.computed_pie_counts)),
    layout.PRUNING_FRAGILE_RECORD: (layout.PRUNING_FRAGILE,
                                    lambda catalog: presets.stored_definition(catalog, layout.PRUNING_FRAGILE_RECORD),
                                    _each_severity(lambda catalog, corruption, severity: presets.computed_pruning_fragile(
                                        catalog, 0, corruption, severity).drop("label", "label_name"))),
    layout.SETTING_BINS_RECORD: (layout.SETTING_BINS,
                                 lambda catalog: queries.stored_definition(catalog, layout.SETTING_BINS_RECORD),
                                 lambda catalog, corruption, _: queries.every_setting_bins(catalog, corruption)),
    layout.REFERENCE_DELTA_BINS_RECORD: (layout.REFERENCE_DELTA_BINS,
                                         lambda catalog: queries.stored_definition(
                                             catalog, layout.REFERENCE_DELTA_BINS_RECORD),
                                         lambda catalog, corruption, _: queries.reference_delta_bins(catalog, corruption)),
}
STORED = (layout.AGREEMENT_RECORD, *_PER_SETTING)  # every stored answer, in the order compute index builds them


def _per_setting(root: Path, catalog: Catalog, record: str, settings: list[tuple], progress: bool) -> Path:
    file, definition_of, answer = _PER_SETTING[record]
    path = root / layout.INDEX / file
    definition = definition_of(catalog)
    if catalog.is_fresh(record, definition):
        return path
    derived_record.forget(root, record)
    severities: dict[str, list[int]] = {}
    for corruption, severity in settings:
        severities.setdefault(corruption, []).append(severity)

    def tables() -> Iterator[pa.Table]:
        for corruption in tqdm(severities, desc=record.replace("_", " "), unit="corruption", disable=not progress):
            yield answer(catalog, corruption, severities[corruption]).to_arrow()

    written = tables()
    first = next(written)  # a store with predictions has a setting
    batches = (batch for table in itertools.chain([first], written) for batch in table.to_batches())
    rows = writer.write_parquet_batches(root, first.schema, batches, path)
    derived_record.write(root, record, inputs=catalog.inputs, rows=input_rows(catalog), definition=definition,
                         outputs={file: rows})
    return path


def build_all(root: str | Path, progress: bool = True, records: Sequence[str] = STORED) -> dict[str, Path | None]:
    """(Re)write each stored answer of `records` (STORED: all) that is not fresh, one corruption at a time
    (its progress shown), on one catalog (the serving copy when it is fresh); the old record goes first and
    the new one after its file, so a reader never takes a half-written answer as fresh. Returns {record: its
    path, None for a store without predictions}."""
    root = Path(root)
    catalog = Catalog(root)
    try:
        if not catalog.partition_files:
            return dict.fromkeys(records)
        settings = catalog.query("SELECT DISTINCT corruption, severity FROM partition_summary ORDER BY ALL",
                                 name="stored_answers.settings").rows()
        return {record: _agreement(root, catalog, settings, progress) if record == layout.AGREEMENT_RECORD
                else _per_setting(root, catalog, record, settings, progress) for record in records}
    finally:
        catalog.close()
