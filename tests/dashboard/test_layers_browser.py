"""The Layers page in a real Chromium: a click on a model's column of the heat map selects that model on every
page (the sidebar's Model, the profile beside its reference, the geometry pages)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from testkit.browser import VIEWPORT, chromium, dashboard, navigate, visit

pytestmark = pytest.mark.browser


def test_a_click_on_a_heat_map_column_selects_that_model_everywhere(dashboard_store) -> None:
    with dashboard(dashboard_store) as url, chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        visit(page, url, "layers")
        main = page.get_by_test_id("stMain")
        heat_map = main.locator(".vega-embed").first
        heat_map.locator('path[aria-label*="model_id: m03-ltr-50;"]').first.click()
        expect(main).to_contain_text("selected: m03-ltr-50", timeout=60_000)
        expect(main).to_contain_text("compared with: m00-dense-0")
        navigate(page, "local")
        expect(main).to_contain_text("m03-ltr-50", timeout=60_000)
