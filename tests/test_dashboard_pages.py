"""Each dashboard page under streamlit's AppTest: renders on a real store, reacts to the sidebar."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench.synthetic import write_store
from dashboard import charts
from store import queries
from store.catalog import Catalog

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("dash"), num_models=3, num_samples=40,
                       corruptions=("gaussian_noise", "contrast"), severities=(1, 3))


def open_app(monkeypatch, store_path, page: str | None = None) -> AppTest:
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store_path))
    app = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def test_overview_shows_the_study(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store)
    assert app.title[0].value == "Overview"
    assert [m.label for m in app.metric] == ["models", "methods", "best clean accuracy"]
    assert app.metric[0].value == "3"
    assert len(app.get("vega_lite_chart")) == 1
    assert app.dataframe[0].value.shape[0] == 3


def test_matrix_page_draws_the_heat_map_and_shows_the_selected_cell(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, "views/matrix.py")
    assert app.title[0].value == "Evaluation matrix"
    assert len(app.get("vega_lite_chart")) == 1
    app.session_state["selected_cell"] = {"model_id": "m01-ft-50", "corruption": "contrast", "severity": 3}
    app.run()
    assert any("m01-ft-50" in c.value and "contrast" in c.value for c in app.caption)


@pytest.mark.parametrize("page", [None, "views/matrix.py"])
def test_pages_explain_a_missing_store(monkeypatch, tmp_path, page) -> None:
    app = open_app(monkeypatch, tmp_path / "absent", page)
    assert "No store at" in app.warning[0].value


def test_changing_the_store_in_the_sidebar_switches_the_page(monkeypatch, store, tmp_path) -> None:
    app = open_app(monkeypatch, store)
    assert app.metric
    app.sidebar.text_input[0].set_value(str(tmp_path)).run()
    assert not app.exception
    assert "is not a prunescope store" in app.error[0].value
    assert not app.metric


def test_heatmap_orders_columns_like_the_benchmark(store) -> None:
    matrix = queries.accuracy_matrix(Catalog(store))
    spec = charts.accuracy_heatmap(matrix, ["gaussian_noise", "contrast"]).to_dict()
    order = spec["encoding"]["x"]["sort"]
    assert order == ["clean s0", "gaussian_noise s1", "gaussian_noise s3", "contrast s1", "contrast s3"]
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 1]
