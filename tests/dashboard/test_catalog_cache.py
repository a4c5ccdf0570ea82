"""The running dashboard's cached catalog follows the store: `compute index` rebuilding index/ is picked up
on the next page view, and opening the store parses its manifest once."""

from __future__ import annotations

import shutil

from dashboard import data
from store import derived, layout, reader

SMALL = {"num_models": 3, "num_samples": 20, "corruptions": ("fog",), "severities": (1,)}


def test_the_next_page_view_picks_up_a_rebuilt_index(synthetic_store, pristine_copy) -> None:
    store = pristine_copy(synthetic_store(**SMALL))
    shutil.rmtree(store / layout.INDEX, ignore_errors=True)  # a store whose derived files are not built
    before = data.cached_catalog(str(store))
    assert not before.has_sample_index and not before.has_aggregates
    assert data.cached_catalog(str(store)) is before  # page views share one catalog while nothing changes
    derived.build_all(store)  # `compute index`, run while the dashboard serves the store
    after = data.cached_catalog(str(store))
    assert after is not before and after.has_sample_index and after.has_aggregates
    assert data.cached_catalog(str(store)) is after


def test_the_dashboard_parses_the_manifest_once_per_catalog(synthetic_store, pristine_copy, monkeypatch) -> None:
    store = pristine_copy(synthetic_store(**SMALL))
    parsed = []
    real = reader.parse_json
    monkeypatch.setattr(reader, "parse_json", lambda text: parsed.append(text) or real(text))
    manifest = (store / "manifest.json").read_text()
    data.cached_catalog(str(store))
    assert parsed.count(manifest) == 1



def test_a_store_without_a_serving_copy_says_so_once_per_session(synthetic_store, pristine_copy, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from testkit.app import APP

    def hints(app: AppTest) -> list[str]:
        return [toast.value for toast in app.toast if "serving copy" in toast.value]

    store = pristine_copy(synthetic_store(**SMALL))
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store))
    app = AppTest.from_file(APP, default_timeout=120).run()
    assert not app.exception, app.exception
    (hint,) = hints(app)
    assert "python -m compute index --store" in hint
    assert not hints(app.run())  # once per session, not on every page view
    derived.build_serving(store, progress=False)
    assert not hints(AppTest.from_file(APP, default_timeout=120).run())  # a fresh copy: nothing to say


def test_a_cached_query_answers_with_the_same_frame_not_a_copy(synthetic_store) -> None:
    from analysis import queries

    catalog = data.cached_catalog(str(synthetic_store(**SMALL)))
    first = data.query(queries.models, catalog)
    assert data.query(queries.models, catalog) is first  # st.cache_data would unpickle a copy per page view
