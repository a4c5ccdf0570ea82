"""The address keeps the view: every page writes the store and its selection into the URL, and opening that
URL (a reload, a shared link, a fresh browser) shows the same store and selection; a value the store does
not have falls back with one message. (The whole round trip in Chromium: test_browser.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import hosting
from dashboard.pages import PAGES
from testkit.app import APP

# beta's models (testkit.synthetic ids) and its settings (testkit.app.CORRUPTIONS at severity 1)
MODEL, OTHER = "m02-gmp-50", "m01-ft-50"


@pytest.fixture(scope="module")
def root(tmp_path_factory, hosted_store) -> Path:
    served = tmp_path_factory.mktemp("address") / "root"
    for name, models in (("alpha", 2), ("beta", 3)):
        hosted_store(models, served / name)
    return served


def app_on(monkeypatch, root: Path, query: dict | None = None, page: str | None = None) -> AppTest:
    for name in (hosting.ENV, hosting.ENV_STORES, hosting.ENV_ANY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(hosting.ENV_STORES, str(root))
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params.update(query or {})
    app.run()
    if page:
        app.switch_page(PAGES[page].script).run()
    assert not app.exception, app.exception
    return app


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_the_selection_is_written_into_the_address(monkeypatch, root) -> None:
    app = app_on(monkeypatch, root)
    app.sidebar.selectbox(key="store_name").set_value("beta").run()
    app.sidebar.selectbox(key="model").set_value(MODEL).run()
    app.sidebar.selectbox(key="compare").set_value(OTHER).run()
    app.sidebar.selectbox(key="corruption").set_value("contrast").run()
    address = {key: app.query_params[key] for key in app.query_params}
    assert {key: address.get(key) for key in ("store", "model", "compare", "corruption", "severity")} == {
        "store": "beta", "model": MODEL, "compare": OTHER, "corruption": "contrast", "severity": "1"}
    app.sidebar.selectbox(key="corruption").set_value("clean").run()
    assert "severity" not in app.query_params  # clean images have none
    assert "methods" not in app.query_params  # every method shown
    app.sidebar.multiselect(key="methods").set_value(["dense", "gmp"]).run()
    assert app.query_params["methods"] == "dense,gmp"


def test_the_address_opens_the_same_store_and_selection(monkeypatch, root) -> None:
    query = {"store": "beta", "model": MODEL, "compare": OTHER, "corruption": "contrast", "severity": "1",
             "level": "model", "metric": "margin", "methods": "dense,gmp"}
    app = app_on(monkeypatch, root, query, page="local")
    sidebar = app.sidebar
    assert sidebar.selectbox(key="store_name").value == "beta"
    assert (sidebar.selectbox(key="model").value, sidebar.selectbox(key="compare").value) == (MODEL, OTHER)
    assert sidebar.selectbox(key="corruption").value == "contrast" and app.session_state["severity"] == 1
    assert app.session_state["level"] == "model" and app.session_state["metric"] == "margin"
    assert sidebar.multiselect(key="methods").value == ["dense", "gmp"]
    assert not sidebar.warning


def test_a_value_the_store_does_not_have_falls_back_with_one_message(monkeypatch, root) -> None:
    app = app_on(monkeypatch, root, {"store": "beta", "model": "m99-none", "corruption": "lava", "severity": "x",
                                     "methods": "dense,lasso"})
    assert len(app.sidebar.warning) == 1
    message = app.sidebar.warning[0].value
    assert "model 'm99-none'" in message and "corruption 'lava'" in message and "severity 'x'" in message
    assert "methods 'dense,lasso'" in message
    assert app.sidebar.selectbox(key="corruption").value == "clean"
    assert app.sidebar.selectbox(key="model").value in {"m01-ft-50", "m02-gmp-50"}


def test_the_samples_page_keeps_its_preset_or_filter_in_the_address(monkeypatch, root) -> None:
    app = app_on(monkeypatch, root, {"store": "beta", "preset": "robust"}, page="samples")
    assert app.selectbox(key="samples_preset").value == "robust"
    assert app.query_params["preset"] == "robust"
    typed = "not correct and margin < 0"
    app = app_on(monkeypatch, root, {"store": "beta", "filter": typed}, page="samples")
    assert app.text_input(key="samples_filter").value == typed and app.query_params["filter"] == typed
    assert "preset" not in app.query_params
    app = app_on(monkeypatch, root, {"store": "beta", "preset": "no_such_preset"}, page="samples")
    assert "preset 'no_such_preset'" in app.warning[0].value
