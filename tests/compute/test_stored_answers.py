"""The per-setting answers `compute index` stores (compute.stored_answers): every model pair's agreement in
every setting, the PIE counts, the pruning-fragile samples and the local-geometry bins equal the on-demand
computation, are read while fresh and never once the predictions change."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from analysis import agreement, presets, queries
from compute import stored_answers
from dashboard.charts.common import BINS
from store import derived, layout
from store.catalog import Catalog
from testkit import synthetic

SEEDS = {"num_models": 6, "num_samples": 45, "corruptions": ("fog", "snow"), "severities": (1, 3), "seeds": 2}
# Per stored answer besides agreement: its module, named query and on-demand computation.
QUERIES = {"pie_counts": (presets, "pie_counts", "computed_pie_counts"),
           "pruning_fragile": (presets, "pruning_fragile", "computed_pruning_fragile"),
           "setting_bins": (queries, "setting_bins", "computed_setting_bins"),
           "pair_delta_bins": (queries, "pair_delta_bins", "computed_pair_delta_bins")}
STORED_RECORDS = [(presets, layout.PIE_COUNTS_RECORD), (presets, layout.PRUNING_FRAGILE_RECORD),
                  (queries, layout.SETTING_BINS_RECORD), (queries, layout.REFERENCE_DELTA_BINS_RECORD)]


@pytest.fixture(scope="module")
def indexed(synthetic_store, tmp_path_factory) -> Path:
    """One copy of the SEEDS store with its serving copy and every stored answer (compute index), for the
    module: read it, and copy it with `pristine_copy` before changing it."""
    store = Path(shutil.copytree(synthetic_store(**SEEDS), tmp_path_factory.mktemp("indexed") / "store"))
    derived.build_serving(store, progress=False)
    assert stored_answers.build_all(store, progress=False) == {
        record: store / layout.INDEX / file for record, file in [
            (layout.AGREEMENT_RECORD, layout.AGREEMENT), (layout.PIE_COUNTS_RECORD, layout.PIE_COUNTS),
            (layout.PRUNING_FRAGILE_RECORD, layout.PRUNING_FRAGILE), (layout.SETTING_BINS_RECORD, layout.SETTING_BINS),
            (layout.REFERENCE_DELTA_BINS_RECORD, layout.REFERENCE_DELTA_BINS)]}
    return store


def answers(catalog: Catalog, computed: bool = False) -> dict[tuple, pl.DataFrame]:
    """Every stored answer's named query (or its on-demand computation) in every setting, each model (against
    its reference for the deltas), keyed by what was asked."""
    ask = {name: getattr(module, on_demand if computed else named) for name, (module, named, on_demand) in QUERIES.items()}
    settings = catalog.query("SELECT DISTINCT corruption, severity FROM predictions ORDER BY ALL", name="test").rows()
    references = catalog.query("SELECT model_id, reference_model_id FROM models ORDER BY model_id", name="test").rows()
    asked: dict[tuple, pl.DataFrame] = {}
    for setting in settings:
        asked["pie_counts", setting] = ask["pie_counts"](catalog, *setting)
        for k in (1, 2):
            asked["pruning_fragile", k, setting] = ask["pruning_fragile"](catalog, k, *setting)
        for model, reference in references:
            asked["setting_bins", model, setting] = ask["setting_bins"](catalog, model, *setting, BINS)
            if reference is not None:
                asked["pair_delta_bins", model, setting] = ask["pair_delta_bins"](catalog, reference, model, *setting,
                                                                                  BINS)
    return asked


def test_stored_answers_equal_the_computed_ones_in_every_setting(indexed, monkeypatch) -> None:
    assert queries.STORED_BINS == BINS  # the grid the Local geometry page asks for is the one stored
    catalog = Catalog(indexed)
    try:
        computed = answers(catalog, computed=True)
        for module, _, on_demand in QUERIES.values():
            monkeypatch.setattr(module, on_demand, lambda *a, **k: (_ for _ in ()).throw(AssertionError("computed")))
        stored = answers(catalog)
        assert stored.keys() == computed.keys() and len(stored) == 5 * (1 + 2 + 6 + 4)
        for asked, frame in stored.items():
            assert frame.schema == computed[asked].schema and frame.equals(computed[asked]), asked
        assert min(frame.height for key, frame in stored.items() if key[0] != "pruning_fragile") > 0
        assert stored["pie_counts", ("fog", 3)].height == 2
        with pytest.raises(AssertionError, match="computed"):  # the grid spans the chosen classes' data
            queries.setting_bins(catalog, "m00-dense-0-s0", "fog", 3, BINS, [0, 1])
        with pytest.raises(AssertionError, match="computed"):  # a pair other than a model and its reference
            queries.pair_delta_bins(catalog, "m02-ft-50-s0", "m00-dense-0-s0", "fog", 3, BINS)
    finally:
        catalog.close()
    chosen = Catalog(indexed, reference="m01-dense-0-s1")  # other references: the stored rows would be wrong
    try:
        assert not any(chosen.is_fresh(record, presets.stored_definition(chosen, record))
                       for record in (layout.PIE_COUNTS_RECORD, layout.PRUNING_FRAGILE_RECORD))
        assert not chosen.is_fresh(layout.REFERENCE_DELTA_BINS_RECORD,
                                   queries.stored_definition(chosen, layout.REFERENCE_DELTA_BINS_RECORD))
    finally:
        chosen.close()


def test_stored_agreement_equals_the_computed_one_in_every_setting(indexed, monkeypatch) -> None:
    store = indexed
    catalog = Catalog(store)
    try:
        settings = catalog.query("SELECT DISTINCT corruption, severity FROM predictions ORDER BY ALL",
                                 name="test").rows()
        computed = {setting: agreement.computed_agreement(catalog, *setting) for setting in settings}
        monkeypatch.setattr(agreement, "computed_agreement", lambda *a, **k: (_ for _ in ()).throw(
            AssertionError("computed, not read")))
        for setting in settings:
            stored = agreement.model_agreement(catalog, *setting)
            assert stored.height == 6 * 5 // 2 and stored.equals(computed[setting]), setting
    finally:
        catalog.close()


def test_stored_agreement_is_not_read_once_a_partition_changes(indexed, pristine_copy) -> None:
    store = pristine_copy(indexed)
    synthetic.rewrite_partition(store, "fog", 1)  # same id, same file names, other rows
    catalog = Catalog(store)
    try:
        assert not catalog.is_fresh(layout.AGREEMENT_RECORD, agreement.stored_definition())
        assert agreement.model_agreement(catalog, "fog", 1).equals(agreement.computed_agreement(catalog, "fog", 1))
    finally:
        catalog.close()
    stored_answers.build_agreement(store, progress=False)  # compute index
    catalog = Catalog(store)
    try:
        assert catalog.is_fresh(layout.AGREEMENT_RECORD, agreement.stored_definition())
    finally:
        catalog.close()


def test_stored_answers_are_not_read_once_a_partition_changes(indexed, pristine_copy) -> None:
    store = pristine_copy(indexed)
    reference = synthetic.rewrite_partition(store, "fog", 1)  # same id and file names, other rows: m00's
    model = "m02-ft-50-s0"  # compared with m00
    catalog = Catalog(store)
    try:
        assert not any(catalog.is_fresh(record, module.stored_definition(catalog, record))
                       for module, record in STORED_RECORDS)
        assert presets.pie_counts(catalog, "fog", 1).equals(presets.computed_pie_counts(catalog, "fog", 1))
        assert presets.pruning_fragile(catalog, 1, "fog", 1).equals(
            presets.computed_pruning_fragile(catalog, 1, "fog", 1))
        assert queries.setting_bins(catalog, reference, "fog", 1, BINS).equals(
            queries.computed_setting_bins(catalog, reference, "fog", 1, BINS))
        assert queries.pair_delta_bins(catalog, reference, model, "fog", 1, BINS).equals(
            queries.computed_pair_delta_bins(catalog, reference, model, "fog", 1, BINS))
    finally:
        catalog.close()
    stored_answers.build_all(store, progress=False)  # compute index
    catalog = Catalog(store)
    try:
        assert all(catalog.is_fresh(record, module.stored_definition(catalog, record))
                   for module, record in STORED_RECORDS)
    finally:
        catalog.close()
