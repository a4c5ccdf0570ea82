"""The whole app in a real Chromium: pages load from the server and show their content."""

from __future__ import annotations

import pytest

from bench.synthetic import write_store
from tests.browser import chromium, dashboard

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = write_store(tmp_path_factory.mktemp("browser"), num_models=3, num_samples=40,
                        corruptions=("gaussian_noise", "contrast"), severities=(1, 3))
    with dashboard(store) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


def test_overview_and_matrix_render_in_a_real_browser(server, browser, tmp_path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{server}/overview")
    page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
    page.locator("canvas, svg.marks").first.wait_for(timeout=60_000)
    page.goto(f"{server}/matrix")
    page.get_by_role("heading", name="Evaluation matrix").wait_for(timeout=60_000)
    chart = page.locator(".vega-embed").first
    chart.wait_for(timeout=60_000)
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=60_000)
    assert chart.bounding_box()["height"] > 100
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "matrix.png"))
    page.close()
