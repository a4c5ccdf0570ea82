"""Every page of the synthetic dashboard store at 1280, 1400 and 1920 pixels wide in a real Chromium: no chart
title, axis or legend text is cut short, escapes its chart or overlaps another (testkit.browser
.text_problems measures the rendered text boxes). One test, so the server and browser start once."""

from __future__ import annotations

import pytest

from dashboard.pages import PAGES
from testkit.browser import chromium, dashboard, text_problems, visit

pytestmark = pytest.mark.browser
WIDTHS = (1280, 1400, 1920)


def test_no_chart_text_is_cut_short_escapes_or_overlaps_on_any_page(dashboard_store) -> None:
    problems = []
    with dashboard(dashboard_store) as url, chromium() as browser:
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            for path in PAGES:
                visit(page, url, path)
                problems += [f"{path} at {width} px: {problem}" for problem in text_problems(page)]
            page.close()
    assert not problems, "\n".join(problems)
