"""The whole app in a real Chromium: every page renders, a matrix click carries over to the geometry pages,
a bad filter is an inline error, and a table row opens the sample.

Runs on the synthetic store of test_dashboard_pages (embeddings and one real checkpoint included), so it
needs no demo build. Screenshots go to $PRUNESCOPE_SCREENSHOTS when set (else a temporary directory);
docs/screenshots/ is made from the demo store with `python -m testkit.browser`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from dashboard.pages import PAGES
from testkit.browser import CONTENT, VIEWPORT, chromium, dashboard, navigate, visit, wait_for_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(dashboard_store):
    with dashboard(dashboard_store) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


@pytest.fixture
def page(browser):
    tab = browser.new_page(viewport=VIEWPORT)
    yield tab
    tab.close()


def test_every_registered_page_is_listed_and_renders_its_content(server, page, tmp_path) -> None:
    out = Path(os.environ.get("PRUNESCOPE_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    visited = set()
    for path in PAGES:
        visit(page, server, path)
        main = page.get_by_test_id("stMain")
        main.locator(CONTENT).first.wait_for(timeout=30_000)  # every page has data to show on this store
        assert "Traceback" not in main.inner_text()
        page.screenshot(path=str(out / f"{path}.png"))
        visited.add(page.url.split("?")[0].rsplit("/", 1)[-1])
    assert visited == set(PAGES)
    links = page.get_by_test_id("stSidebarNav").locator("a[href]")
    listed = {(link.get_attribute("href") or "").rstrip("/").rsplit("/", 1)[-1] for link in links.all()}
    assert listed == set(PAGES)  # the sidebar lists exactly the registered pages


def test_a_matrix_click_selects_the_cell_on_the_geometry_pages(server, page) -> None:
    visit(page, server, "matrix")
    cell = page.locator('.vega-embed path[aria-label*="model_id: m02-gmp-50;"]'
                        '[aria-label*="corruption: contrast;"][aria-label*="severity: 3"]')
    cell.click()
    caption = page.get_by_test_id("stCaptionContainer").filter(has_text="Selected:")
    expect(caption).to_contain_text("m02-gmp-50", timeout=60_000)
    expect(caption).to_contain_text("contrast, severity 3")
    wait_for_app(page)

    navigate(page, "local")
    main = page.get_by_test_id("stMain")
    expect(main).to_contain_text("Model m02-gmp-50 on contrast, severity 3")
    navigate(page, "global")
    expect(main).to_contain_text("m02-gmp-50 on contrast, severity 3")


def test_a_bad_filter_is_an_inline_error(server, page) -> None:
    visit(page, server, "samples")
    page.get_by_test_id("stMain").get_by_role("radio", name="filter", exact=True).click()
    wait_for_app(page)
    box = page.get_by_label("Filter", exact=True)
    box.fill("angle_true > 60 and colour = 'red'")
    box.press("Enter")
    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text("unknown column 'colour'", timeout=60_000)
    assert page.get_by_test_id("stException").count() == 0


def test_a_sample_opens_from_the_url_and_from_the_samples_table(server, page) -> None:
    page.goto(f"{server}/sample?sample=5")
    page.get_by_role("heading", name="Sample", exact=True).wait_for(timeout=60_000)
    wait_for_app(page, timeout=120)
    assert page.get_by_test_id("stNumberInputField").input_value() == "5"

    visit(page, server, "samples")
    grid = page.get_by_test_id("stDataFrame").locator("canvas").first
    grid.wait_for(timeout=60_000)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 36 + 17)  # the first row's selection box, under the header
    page.get_by_role("heading", name="Sample", exact=True).wait_for(timeout=60_000)
    wait_for_app(page, timeout=120)
    assert "sample=" in page.url


# -- hosting mode ---------------------------------------------------------------------------------------------

HOSTILE_CLASS = "![x](http://example.invalid/a.png)"


@pytest.fixture(scope="module")
def stores(tmp_path_factory, hosted_store):
    """ROOT with stores alpha (2 models, a class name holding a Markdown image) and beta (3 models), and
    a symlink to a store outside ROOT (gamma, 4 models)."""
    import json

    base = tmp_path_factory.mktemp("hosted")
    root = base / "root"
    for name, models in (("alpha", 2), ("beta", 3)):
        hosted_store(models, root / name)
    hosted_store(4, base / "gamma")
    (root / "gamma").symlink_to(base / "gamma")
    manifest = json.loads((root / "alpha" / "manifest.json").read_text())
    manifest["class_names"] = [HOSTILE_CLASS] * len(manifest["class_names"])
    (root / "alpha" / "manifest.json").write_text(json.dumps(manifest))
    return root


def models_metric(page) -> str:
    metric = page.get_by_test_id("stMetricValue").first
    metric.wait_for(timeout=60_000)
    return metric.inner_text()


def test_a_visitor_of_one_served_store_cannot_reach_another_path(stores, page) -> None:
    with dashboard(stores / "alpha") as url:
        for value in (str(stores.parent / "gamma"), "beta", "../gamma"):
            page.goto(f"{url}/overview?store={value}")
            wait_for_app(page)
            assert models_metric(page) == "2"
        sidebar = page.get_by_test_id("stSidebar")
        assert sidebar.get_by_role("textbox").count() == 0  # no path box
        assert str(stores) not in page.get_by_test_id("stMain").inner_text()
        page.goto(f"{url}/sample?sample=3")
        page.get_by_role("heading", name="Sample", exact=True).wait_for(timeout=60_000)
        wait_for_app(page)
        expect(page.get_by_test_id("stMain")).to_contain_text(HOSTILE_CLASS)  # shown as text
        assert page.locator('img[src*="example.invalid"], a[href*="example.invalid"]').count() == 0


def test_the_store_picker_lists_exactly_the_stores_under_the_root(stores, page) -> None:
    with dashboard(stores, mode="--stores") as url:
        page.goto(f"{url}/overview?store=../gamma")
        wait_for_app(page)
        assert models_metric(page) == "2"
        expect(page.get_by_test_id("stSidebar").get_by_test_id("stAlertContentWarning")).to_contain_text(
            "No store named")
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stSelectbox").first.click()
        options = page.get_by_role("option")
        options.first.wait_for(timeout=30_000)
        assert options.all_inner_texts() == ["alpha", "beta"]
        options.filter(has_text="beta").click()
        wait_for_app(page)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text("3", timeout=60_000)
        assert sidebar.get_by_role("textbox").count() == 0


def test_a_copied_address_opens_the_same_store_selection_and_content(stores, browser) -> None:
    """Three pages of the second store, a click that selects a model and setting, a reload, then the copied
    address in a fresh browser context (no session, no cookies): the same store, selection and content.
    Deploy is hidden from the first session (.streamlit/config.toml)."""
    shown = "Model m01-ft-50 on contrast, severity 1"

    def view(tab) -> tuple[dict[str, str], str]:
        """The sidebar's selection (each box's label and value) and the page's heading and first caption."""
        wait_for_app(tab)
        main = tab.get_by_test_id("stMain")
        expect(main).to_contain_text(shown, timeout=60_000)
        boxes = tab.get_by_test_id("stSidebar").get_by_role("combobox").evaluate_all(
            "boxes => boxes.map(box => [box.getAttribute('aria-label'), box.value])")
        return dict(boxes), main.locator("h1").inner_text() + main.get_by_test_id("stCaptionContainer").first.inner_text()

    with dashboard(stores, mode="--stores") as url:
        tab = browser.new_page(viewport=VIEWPORT)
        visit(tab, url, "overview")
        assert tab.get_by_test_id("stAppDeployButton").count() == 0 and tab.get_by_test_id("stMainMenu").count() == 1
        sidebar = tab.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stSelectbox").first.click()
        tab.get_by_role("option").filter(has_text="beta").click()
        expect(tab.get_by_test_id("stMetricValue").first).to_have_text("3", timeout=60_000)
        wait_for_app(tab)
        navigate(tab, "matrix")
        tab.locator('.vega-embed path[aria-label*="model_id: m01-ft-50;"][aria-label*="corruption: contrast;"]'
                    '[aria-label*="severity: 1"]').first.click()
        expect(tab.get_by_test_id("stCaptionContainer").filter(has_text="Selected:")).to_contain_text(
            "m01-ft-50", timeout=60_000)
        wait_for_app(tab)
        navigate(tab, "local")
        before = view(tab)
        assert "store=beta" in tab.url and "model=m01-ft-50" in tab.url and "corruption=contrast" in tab.url

        tab.reload()
        assert view(tab) == before and "/local?" in tab.url
        copied = tab.url
        context = browser.new_context(viewport=VIEWPORT)
        try:
            fresh = context.new_page()
            fresh.goto(copied)
            assert view(fresh) == before
            assert before[0]["Store"] == "beta" and before[0]["Model"] == "m01-ft-50"
            assert before[0]["Corruption"] == "contrast"
            assert fresh.get_by_test_id("stSidebar").get_by_test_id("stAlertContentWarning").count() == 0
        finally:
            context.close()
            tab.close()
