"""Questions asked of a store, each a function `Catalog -> polars frame` in the module of its topic, and the
notebook's door to them: `open_study(path)` opens a store, and each method of the Study it returns is one
of those named queries run on the store's catalog, returning a Polars frame.

    from analysis import open_study
    study = open_study("data/demo")
    study.flipped("small_cnn-ft-90-s0", "fog", 5)   # right on its reference, wrong on the model

`reference` means what `--reference` means on the command line: the model every other model is compared
with; None (the default) compares each model with its base, the model it was derived from. A study is
opened with one (`open_study(path, reference=...)`) and any method may name another for one call.

A method is a small function: check the arguments a person types (so a bad value gets a one-line error
naming it and what the store has), then call the analysis function that owns the question. Nothing here
computes an answer itself.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis import matrices, presets, queries, report
from analysis.sql import HOW_TO_ADD_A_REFERENCE, NoReference, require_models
from store import layout
from store.catalog import Catalog
from store.layout import StoreError
from store.vocabulary import LEVELS, SEVERITIES


def open_study(path: str | Path, *, reference: str | None = None) -> Study:
    """The store at `path` as a Study; StoreError naming the file when it is not a readable store, or
    when `reference` is not one of its models."""
    return Study(path, reference=reference)


class Study:
    """One store, read-only; the methods are named queries returning Polars frames (see the module doc)."""

    def __init__(self, path: str | Path, *, reference: str | None = None) -> None:
        if not Path(path).is_dir():
            raise StoreError(f"no store directory at {path}")
        self.path = Path(path)
        self.reference = reference
        self._catalogs: dict[str | None, Catalog] = {}
        self.catalog = self._catalog(reference)  # opened now: a bad path or reference fails here

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r}, reference={self.reference!r})"

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every catalog this study opened."""
        for catalog in self._catalogs.values():
            catalog.close()
        self._catalogs.clear()

    def _catalog(self, reference: str | None) -> Catalog:
        """The catalog comparing with `reference` (None: the study's own), opened once."""
        chosen = self.reference if reference is None else reference
        if chosen not in self._catalogs:
            self._catalogs[chosen] = Catalog(self.path, reference=chosen)
        return self._catalogs[chosen]

    def _setting(self, corruption: str, severity: int) -> tuple[str, int]:
        """(corruption, severity) when the store has that setting, else ValueError naming the bad value."""
        known = [layout.CLEAN, *self.catalog.manifest["corruptions"]]
        if corruption not in known:
            raise ValueError(f"unknown corruption {corruption!r}; the store has: {', '.join(known)}")
        if corruption == layout.CLEAN and severity != 0:
            raise ValueError(f"severity {severity!r}: clean images have severity 0")
        if corruption != layout.CLEAN and severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r}: {corruption} takes one of {', '.join(map(str, SEVERITIES))}")
        return corruption, int(severity)

    # -- the named queries ------------------------------------------------------------------------------

    def models(self, reference: str | None = None) -> pl.DataFrame:
        """One row per model card (analysis.queries.models), with the reference each is compared with."""
        return queries.models(self._catalog(reference))

    def matrix(self, metric: str = "accuracy", reference: str | None = None,
               group_by: str = "model") -> pl.DataFrame:
        """The evaluation matrix: the mean of `metric` (one of analysis.matrices.CELL_METRICS) per model (or
        per method, `group_by="method"`) x setting, beside its reference's (analysis.matrices.metric_matrix)."""
        return matrices.metric_matrix(self._catalog(reference), metric, group_by)

    def flipped(self, model: str, corruption: str = layout.CLEAN, severity: int = 0,
                reference: str | None = None) -> pl.DataFrame:
        """Samples the reference gets right and `model` gets wrong in one setting (analysis.presets.
        flipped_by_pruning): `study.flipped("small_cnn-ft-90-s0", "fog", 5)`."""
        catalog = self._catalog(reference)
        corruption, severity = self._setting(corruption, severity)
        require_models(catalog, [model])
        cards = queries.models(catalog)
        compared_with = cards.filter(pl.col("model_id") == model)["reference_model_id"][0]
        if compared_with is None:
            raise NoReference(f"model {model!r} has no reference to compare with: {HOW_TO_ADD_A_REFERENCE}, "
                              f"or pass reference=MODEL_ID")
        return presets.flipped_by_pruning(catalog, compared_with, model, corruption, severity)

    def filter(self, expression: str, limit: int = 500, reference: str | None = None) -> pl.DataFrame:
        """The first `limit` prediction rows matching a free filter (the Samples page's grammar, e.g.
        `reference_correct AND NOT correct AND corruption = 'fog'`; analysis.presets.filter_rows)."""
        return presets.filter_rows(self._catalog(reference), expression, limit)

    def sample(self, sample_id: int) -> pl.DataFrame:
        """Every prediction of one sample across models and settings (analysis.queries.sample_rows)."""
        frame = queries.sample_rows(self.catalog, sample_id)
        if frame.is_empty():
            total = int(self.catalog.manifest["num_samples"])
            raise ValueError(f"no predictions for sample {sample_id!r} in {self.path}; its sample ids run "
                             f"from 0 to {total - 1}")
        return frame

    def report(self, by: str = "group", columns: str = "full", reference: str | None = None) -> pl.DataFrame:
        """The paper table, long (analysis.report: one row per (row, column) with mean, low, high and
        p_value), as `python -m compute report --by BY --columns COLUMNS --format csv` prints it."""
        if by not in LEVELS:
            raise ValueError(f"unknown level {by!r}; choose one of: {', '.join(LEVELS)}")
        return report.select_columns(report.report_table(self._catalog(reference), by), columns)
