"""The per-setting answers `compute index` stores (compute.stored_answers): every model pair's agreement in
every setting equals the on-demand computation, is read while fresh and never once the predictions change."""

from __future__ import annotations

from analysis import agreement
from compute import stored_answers
from store import derived, layout
from store.catalog import Catalog
from testkit import synthetic

SEEDS = {"num_models": 6, "num_samples": 45, "corruptions": ("fog", "snow"), "severities": (1, 3), "seeds": 2}


def test_stored_agreement_equals_the_computed_one_in_every_setting(synthetic_store, pristine_copy,
                                                                   monkeypatch) -> None:
    store = pristine_copy(synthetic_store(**SEEDS))
    derived.build_serving(store, progress=False)
    assert stored_answers.build_agreement(store, progress=False) == store / layout.INDEX / layout.AGREEMENT
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


def test_stored_agreement_is_not_read_once_a_partition_changes(synthetic_store, pristine_copy) -> None:
    store = pristine_copy(synthetic_store(**SEEDS))
    stored_answers.build_agreement(store, progress=False)
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
