"""A real dashboard server and a real Chromium, for browser tests, page-time benchmarks and screenshots.

Debian's Chromium (/usr/bin/chromium) driven by Playwright; never `playwright install`, which downloads.
Servers listen on 127.0.0.1 only.

    python -m testkit.browser --store data/demo --out docs/screenshots     # one PNG per page
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dashboard.pages import PAGES

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("PRUNESCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 900}
# What a page shows once it has rendered: a drawn chart, a table, an image, or an explanation.
CONTENT = ".vega-embed svg.marks, .vega-embed canvas, [data-testid='stDataFrame'] canvas, [data-testid='stImage'] img"
EXPLANATION = "[data-testid='stAlert']"


def free_port() -> int:
    """A port free on 127.0.0.1 now. Under pytest-xdist each worker looks only in its own block of 1,000
    ports (worker gw<K>: from 20000 + 1000 K, K below 40), so two workers starting servers at once never pick the same
    one; elsewhere the system chooses."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    block = int(worker[2:]) % 40 if worker.startswith("gw") and worker[2:].isdigit() else None
    candidates = [0] if block is None else range(20_000 + 1_000 * block, 21_000 + 1_000 * block)
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError(f"no free port among {len(candidates)} for xdist worker {worker}")


@contextlib.contextmanager
def dashboard(store: str | Path, timeout: float = 90.0, mode: str = "--store",
              env: dict[str, str] | None = None) -> Iterator[str]:
    """Run the dashboard as `make serve` does (dashboard.serve: `streamlit run dashboard/app.py`, warmed) with
    `-- --store STORE` (or `--stores ROOT` with mode="--stores") on a free port; yields the base URL."""
    port = free_port()
    command = [sys.executable, "-m", "dashboard.serve",
               "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
               "--", mode, str(store)]
    with serve(command, port, env=env, timeout=timeout) as url:
        yield url


def wait_healthy(url: str, timeout: float, process: subprocess.Popen | None = None, log: str = "") -> None:
    """Return once `url`/_stcore/health answers 200 (a Streamlit server, or Caddy in front of its workers):
    TimeoutError after `timeout` s, RuntimeError when `process` exits first (naming its `log`)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become healthy in {timeout} s" + (f"; see {log}" if log else ""))
        time.sleep(0.3)


@contextlib.contextmanager
def serve(command: list[str], port: int, env: dict[str, str] | None = None, timeout: float = 90.0) -> Iterator[str]:
    """Run a dashboard server `command` (listening on 127.0.0.1:`port`) from the repository root until
    /_stcore/health answers; yields the base URL and stops the server afterwards."""
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"prunescope-streamlit-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, timeout, process, log.name)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Debian Chromium under Playwright; yields the Browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# A page is rendered when its script run is over, every chart element has drawn its marks (charts load
# lazily: the element exists before its .vega-embed does) and no element is still a loading placeholder
# (sync and async Playwright callers share these two conditions).
SCRIPT_DONE = '.stApp[data-test-script-state="notRunning"]'
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
                        .every(chart => chart.querySelector('.vega-embed svg.marks, .vega-embed canvas'))
                     && !document.querySelector('[data-testid="stSkeleton"]')"""


def wait_for_app(page: Any, timeout: float = 60.0) -> None:
    """Wait until the script run is over, every chart has drawn its marks and nothing is still loading."""
    page.locator(SCRIPT_DONE).wait_for(timeout=timeout * 1000)
    page.wait_for_function(CHARTS_DRAWN, timeout=timeout * 1000)


def _rendered(page: Any, path: str, timeout: float) -> None:
    """Wait for the page's rendered content: its heading, the script run over, every chart drawn, and a
    chart, table, image or explanation on screen. AssertionError when it shows a Python exception."""
    page.get_by_role("heading", name=PAGES[path].title, exact=True).wait_for(timeout=timeout * 1000)
    wait_for_app(page, timeout)
    page.get_by_test_id("stMain").locator(f"{CONTENT}, {EXPLANATION}").first.wait_for(timeout=timeout * 1000)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{path}: {exceptions.first.inner_text()[:500]}"


def visit(page: Any, base_url: str, path: str, timeout: float = 60.0) -> float:
    """Open a page by its URL (a new session, as a link or bookmark does) and wait until it has rendered;
    returns the seconds it took."""
    start = time.perf_counter()
    page.goto(f"{base_url}/{path}")
    _rendered(page, path, timeout)
    return time.perf_counter() - start


def navigate(page: Any, path: str, timeout: float = 60.0) -> float:
    """Go to another page through the sidebar (same session, so the selection stays) and wait until it
    has rendered; returns the seconds it took."""
    start = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=PAGES[path].title, exact=True).click()
    _rendered(page, path, timeout)
    return time.perf_counter() - start


# Text a reader must be able to read on every chart: titles, axis titles and labels, legend titles and
# labels (Vega's SVG roles). A problem is text cut short with an ellipsis, text outside its chart, or two
# such texts overlapping.
TEXT_PROBLEMS = """() => {
    const roles = ['title-text', 'axis-title', 'axis-label', 'legend-title', 'legend-label'];
    const problems = [];
    // A text's box as drawn (rotation included): its four corners on screen, shrunk by 10 % towards the
    // centre so that the padding of a glyph box is not taken for an overlap.
    const corners = (svg, node) => {
        const b = node.getBBox(), m = node.getScreenCTM();
        const points = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
            .map(([x, y]) => { const p = svg.createSVGPoint(); p.x = x; p.y = y; const q = p.matrixTransform(m); return [q.x, q.y]; });
        const cx = points.reduce((s, p) => s + p[0], 0) / 4, cy = points.reduce((s, p) => s + p[1], 0) / 4;
        return points.map(([x, y]) => [cx + 0.9 * (x - cx), cy + 0.9 * (y - cy)]);
    };
    const apart = (a, b) => [a, b].some(poly => poly.some((p, i) => {  // a separating axis exists
        const q = poly[(i + 1) % 4], axis = [q[1] - p[1], p[0] - q[0]];
        const project = points => points.map(([x, y]) => x * axis[0] + y * axis[1]);
        const pa = project(a), pb = project(b);
        return Math.max(...pa) <= Math.min(...pb) || Math.max(...pb) <= Math.min(...pa);
    }));
    // The page's content column: a chart text right of it is cut off by the page (unless a box scrolls it).
    const main = document.querySelector('[data-testid="stMainBlockContainer"]') || document.querySelector('[data-testid="stMain"]');
    const edge = main ? main.getBoundingClientRect().right : Infinity;
    document.querySelectorAll('[data-testid="stMain"] .vega-embed svg.marks').forEach((svg, index) => {
        const frame = svg.getBoundingClientRect();
        const texts = [];
        for (const role of roles) {
            svg.querySelectorAll(`g.role-${role} text`).forEach(node => {
                const content = node.textContent.trim();
                const box = node.getBoundingClientRect();
                if (!content || box.width === 0 || getComputedStyle(node).opacity === '0') return;
                texts.push({role, content, poly: corners(svg, node)});
                if (content.endsWith('…')) problems.push(`chart ${index}: ${role} cut short: "${content}"`);
                // 4 px: a text's line box reaches a little above its glyphs (a title at the very top)
                if (box.left < frame.left - 4 || box.right > frame.right + 4 || box.top < frame.top - 4
                    || box.bottom > frame.bottom + 4) problems.push(`chart ${index}: ${role} outside the chart: "${content}"`);
                if (box.right > edge + 4) problems.push(`chart ${index}: ${role} beyond the page's right edge: "${content}"`);
            });
        }
        for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++)
            if (!apart(texts[i].poly, texts[j].poly))
                problems.push(`chart ${index}: ${texts[i].role} "${texts[i].content}" overlaps ${texts[j].role} "${texts[j].content}"`);
    });
    return problems;
}"""


def text_problems(page: Any) -> list[str]:
    """Every truncated, escaping or overlapping title, axis or legend text on the rendered page, and every
    one right of the page's content column (cut off) unless a scrolling box holds its chart."""
    return page.evaluate(TEXT_PROBLEMS)


def screenshots(store: str | Path, out: str | Path) -> list[Path]:
    """One viewport-sized PNG of every page on `store`, as out/<url path>.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with dashboard(store) as url, chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        for path in PAGES:
            visit(page, url, path, timeout=120)
            written.append(out / f"{path}.png")
            page.screenshot(path=str(written[-1]))
            _shrink(written[-1])
    return written


def _shrink(png: Path) -> None:
    """Re-save a screenshot with a 256-colour palette: a fraction of the bytes, for committing."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(png, optimize=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Screenshot every dashboard page on a store.")
    parser.add_argument("--store", default="data/demo")
    parser.add_argument("--out", default="docs/screenshots")
    arguments = parser.parse_args()
    for path in screenshots(arguments.store, arguments.out):
        print(path)
