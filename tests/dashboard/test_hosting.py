"""Hosting mode: the operator decides which stores are served; a visitor picks among them by name and can
name no other path (sidebar or address), and no address parameter ends in a traceback. The address keeps
the store picked, images reach the browser losslessly, and visitors get a viewer's toolbar and no error
details."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import guard, hosting
from dashboard.pages import PAGES
from dashboard.text import code
from testkit.app import APP


@pytest.fixture(scope="module")
def root(tmp_path_factory, hosted_store) -> Path:
    """ROOT holding stores `alpha` (2 models) and `beta` (3 models), a directory without a manifest, a
    file, and a symlink to a store outside ROOT (`gamma`, 4 models) that must not be served."""
    base = tmp_path_factory.mktemp("hosting")
    served = base / "root"
    for name, models in (("alpha", 2), ("beta", 3)):
        hosted_store(models, served / name)
    hosted_store(4, base / "outside" / "gamma")
    (served / "empty").mkdir()
    (served / "notes.txt").write_text("not a store")
    (served / "gamma").symlink_to(base / "outside" / "gamma")
    return served


def app_on(monkeypatch, page: str | None = None, query: dict | None = None, **env: str) -> AppTest:
    for name in (hosting.ENV, hosting.ENV_STORES, hosting.ENV_ANY):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params.update(query or {})
    app.run()
    if page:
        app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def models_shown(app: AppTest) -> str:
    return app.metric[0].value


def test_one_store_is_served_and_the_address_cannot_name_another(monkeypatch, root) -> None:
    outside = root.parent / "outside" / "gamma"
    for value in (str(outside), "gamma", "../outside/gamma", "beta"):
        app = app_on(monkeypatch, query={"store": value}, PRUNESCOPE_STORE=str(root / "alpha"))
        assert models_shown(app) == "2"
        assert not app.sidebar.text_input  # no path box for a visitor
        assert "ignored" in app.sidebar.warning[0].value
        assert str(root) not in app.caption[0].value  # the store's name, not the server's path


def test_the_picker_lists_exactly_the_stores_under_the_root(monkeypatch, root) -> None:
    app = app_on(monkeypatch, PRUNESCOPE_STORES=str(root))
    picker = app.sidebar.selectbox(key="store_name")
    assert picker.options == ["alpha", "beta"]  # no symlink, no directory without a manifest, no file
    assert not app.sidebar.text_input
    assert models_shown(app) == "2"
    picker.set_value("beta").run()
    assert models_shown(app) == "3"


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_the_address_picks_a_served_store_by_name_only(monkeypatch, root) -> None:
    assert models_shown(app_on(monkeypatch, query={"store": "beta"}, PRUNESCOPE_STORES=str(root))) == "3"
    for value in ("gamma", "../outside/gamma", str(root / "beta"), "empty", "notes.txt", "![x](http://x.invalid/a.png)"):
        app = app_on(monkeypatch, query={"store": value}, PRUNESCOPE_STORES=str(root))
        assert models_shown(app) == "2", value  # the first served store, not the named path
        assert "No store named" in app.sidebar.warning[0].value
        assert code(value) in app.sidebar.warning[0].value  # shown as text


def test_the_path_box_exists_only_when_the_operator_allows_any_store(monkeypatch, root) -> None:
    app = app_on(monkeypatch, PRUNESCOPE_STORE=str(root / "alpha"), PRUNESCOPE_ALLOW_ANY_STORE="1")
    app.sidebar.text_input(key="store").set_value(str(root / "beta")).run()
    assert models_shown(app) == "3"


def test_the_command_line_chooses_the_mode(monkeypatch, root) -> None:
    monkeypatch.setattr("sys.argv", ["app.py", "--stores", str(root)])
    monkeypatch.delenv(hosting.ENV, raising=False)
    assert hosting.hosting() == hosting.Hosting(stores=str(root))
    monkeypatch.setattr("sys.argv", ["app.py", "--store", str(root / "alpha"), "--allow-any-store"])
    assert hosting.hosting() == hosting.Hosting(store=str(root / "alpha"), allow_any=True)
    monkeypatch.setattr("sys.argv", ["app.py"])
    monkeypatch.setenv(hosting.ENV_STORES, str(root))
    assert hosting.hosting().names() == ["alpha", "beta"]


BAD_VALUES = ["-1", "abc", "99999999999999999999999999", "²", "1e9", "", " 3", "0x10", "\x00", "%", "3" * 5000]


@pytest.mark.slow  # large AppTest: every page under every hostile address
@pytest.mark.parametrize("page", [page.script for page in PAGES.values()])
def test_no_address_parameter_value_ends_in_a_traceback(monkeypatch, root, page) -> None:
    for value in BAD_VALUES:
        app = app_on(monkeypatch, page, query={"sample": value, "store": value, "page": value},
                     PRUNESCOPE_STORES=str(root))
        assert app.title, (page, value)
        assert not app.error, (page, value, [e.value for e in app.error])


def test_a_valid_sample_parameter_opens_that_sample(monkeypatch, root) -> None:
    app = app_on(monkeypatch, PAGES["sample"].script, query={"sample": "7"}, PRUNESCOPE_STORE=str(root / "alpha"))
    assert app.number_input(key="sample").value == 7
    assert os.fspath(root) not in "\n".join(m.value for m in app.markdown)


def test_a_visitor_runs_one_filter_at_a_time_rests_as_long_as_it_ran_and_others_are_not_held(monkeypatch) -> None:
    import threading

    from store.catalog import QueryTimeout

    who = threading.local()
    monkeypatch.setattr(guard, "visitor", lambda: who.name)
    started, release = threading.Event(), threading.Event()

    def first_tab() -> None:
        who.name = "visitor-a"
        with guard.one_filter_at_a_time():
            started.set()
            release.wait(10)

    tab = threading.Thread(target=first_tab)
    tab.start()
    assert started.wait(10)
    who.name = "visitor-a"
    with pytest.raises(QueryTimeout, match="another filter of yours"), guard.one_filter_at_a_time(wait=0.2):
        pass
    who.name = "visitor-b"
    with guard.one_filter_at_a_time(wait=0.2):  # another visitor is not held
        pass
    release.set()
    tab.join(10)
    who.name = "visitor-a"
    with pytest.raises(QueryTimeout), guard.one_filter_at_a_time(wait=0.0):  # resting as long as it ran
        pass
    with guard.one_filter_at_a_time(wait=5.0):  # then free again
        pass
    assert not guard._filtering


def test_an_empty_root_says_no_store_is_served(monkeypatch, tmp_path) -> None:
    app = app_on(monkeypatch, PRUNESCOPE_STORES=str(tmp_path))
    assert "No store is served here yet" in app.warning[0].value
    assert str(tmp_path) not in app.warning[0].value and not app.error


# -- what the visitor sees is what the model saw -------------------------------------------------------------

@pytest.fixture
def sent_images(monkeypatch) -> list[tuple[bytes, str]]:
    """(bytes, mimetype) of every image the app hands the browser (Streamlit's media file storage)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    sent: list[tuple[bytes, str]] = []
    real = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        sent.append((path_or_data, mimetype))
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    return sent


def decoded(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def test_the_sample_and_samples_pages_send_the_pixels_the_model_saw_losslessly(monkeypatch, root,
                                                                              sent_images) -> None:
    """The synthetic store's images are uniform noise: JPEG would move them by tens of grey levels."""
    from compute import pixels

    store = root / "alpha"
    app_on(monkeypatch, PAGES["sample"].script, query={"sample": "5"}, PRUNESCOPE_STORE=str(store))
    (data, mimetype), = sent_images
    shown = decoded(data)
    factor = shown.shape[0] // 32
    assert mimetype == "image/png" and factor > 1
    assert np.array_equal(shown[::factor, ::factor], pixels.image(store, 5, "clean", 0))  # every pixel, exactly
    sent_images.clear()
    app = app_on(monkeypatch, PAGES["samples"].script, PRUNESCOPE_STORE=str(store))
    assert sent_images and {mimetype for _, mimetype in sent_images} == {"image/png"}
    first = int(app.get("image")[0].proto.imgs[0].caption.split()[0].lstrip("#"))
    shown = decoded(sent_images[0][0])
    assert np.array_equal(shown[::3, ::3], pixels.image(store, first, "clean", 0))


def test_the_address_keeps_the_store_a_visitor_picked(monkeypatch, root) -> None:
    app = app_on(monkeypatch, PRUNESCOPE_STORES=str(root))
    app.sidebar.selectbox(key="store_name").set_value("beta").run()
    assert app.query_params["store"] == "beta"
    reloaded = app_on(monkeypatch, query={"store": "beta"}, PRUNESCOPE_STORES=str(root))  # a reload, a shared link
    assert models_shown(reloaded) == "3" and reloaded.sidebar.selectbox(key="store_name").value == "beta"


def test_every_way_of_starting_the_app_gives_a_viewer_toolbar_and_no_error_details() -> None:
    """The options live in .streamlit/config.toml, which Streamlit reads from the working directory before the
    first session (`streamlit run`, `make serve` and the Docker image all start in the checkout's root), and
    nowhere else: no flag or script sets them a second way."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    client = tomllib.loads((root / ".streamlit" / "config.toml").read_text())["client"]
    assert client == {"toolbarMode": "viewer", "showErrorDetails": "none"}
    for path in ("Makefile", "Dockerfile", "dashboard/app.py", "testkit/browser.py", "dashboard/supervise.py"):
        text = (root / path).read_text()
        assert "toolbarMode" not in text and "showErrorDetails" not in text, path
    serve = (root / "Makefile").read_text().split("\nserve:")[1].split("\n\n")[0]
    assert "-m dashboard.serve " in serve and "cd " not in serve


@pytest.mark.parametrize("typed", ["/tmp/" + "x" * 5000, "/tmp/" + "/".join(["y" * 200] * 30)])
def test_a_path_too_long_for_the_file_system_in_the_path_box_gets_a_message(monkeypatch, root, typed) -> None:
    app = app_on(monkeypatch, PRUNESCOPE_STORE=str(root / "alpha"), PRUNESCOPE_ALLOW_ANY_STORE="1")
    app.sidebar.text_input(key="store").set_value(typed).run()
    assert not app.exception, app.exception
    assert "is not a usable path: File name too long" in app.warning[0].value


# -- what leaves the page -----------------------------------------------------------------------------------

def test_every_csv_download_holds_inert_cells(monkeypatch) -> None:
    """dashboard.text.downloads is every page's download (one call per result); its CSV cells cannot run in
    a spreadsheet (a leading ' before = + - @ tab CR, as OWASP recommends); numbers stay numbers."""
    import polars as pl
    from streamlit.delta_generator import DeltaGenerator

    from dashboard.text import downloads

    built: dict[str, object] = {}
    monkeypatch.setattr(DeltaGenerator, "download_button",
                        lambda self, label, data, **options: built.setdefault(label, data() if callable(data) else data))
    hostile = ['=HYPERLINK("http://x.invalid","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain"]
    downloads(pl.DataFrame({"method": hostile, "drop": [-1.5] * len(hostile)}), "hostile")
    cells = pl.read_csv(io.StringIO(built["CSV"]))
    assert cells["method"].to_list()[:-1] == ["'" + text for text in hostile[:-1]] and cells["method"][-1] == "plain"
    assert cells["drop"].to_list() == [-1.5] * len(hostile)
