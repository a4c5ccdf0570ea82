"""Dashboard under load: 20 concurrent real browser sessions walk through every page for a bounded time.

One headless Debian Chromium holds 20 browser contexts (separate cookies and Streamlit sessions), all
driven at once through Playwright's async API against one `streamlit run dashboard/app.py` server on
127.0.0.1. Sessions arrive over the first 10 s; each opens the app at a different page, then clicks
through all pages in turn in the sidebar, looking at each for 2-5 s, as a person does. A page's time
runs from the click (or the first navigation) until its script run is over and every chart has drawn;
an error is a page that shows a Python exception, a JavaScript error, or one that does not render
within the page timeout. Goals: 0 errors, p95 page time <= 5 s on 2 cores. The browsers share the
machine with the server, so the report also gives the CPU each used: which side limits page time.

    python -m bench.load [--store DIR] [--sessions 20] [--seconds 60]

The store is data/demo (`python -m compute demo --out data/demo`); when it is missing, a synthetic
store of the demo's shape stands in, and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.synthetic import write_store
from compute import corruptions
from tests.browser import CHARTS_DRAWN, CHROMIUM, CHROMIUM_ARGS, PAGES, SCRIPT_DONE, VIEWPORT, dashboard

DEMO = Path("data/demo")
SESSIONS = 20
SECONDS = 60.0
RAMP_S = 10.0  # sessions arrive evenly over the first seconds, as users do, not in one instant
THINK_S = (2.0, 5.0)  # a person looks at a page for a few seconds before the next click
PAGE_TIMEOUT_S = 60.0


@dataclass
class Load:
    """Page times per url path, every error with the session and page it happened on, and the CPU seconds
    the dashboard server and the browser used while the sessions ran (who is the bottleneck)."""

    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    def all_times(self) -> list[float]:
        return sorted(t for times in self.times.values() for t in times)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted `values`, by linear interpolation."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


async def rendered(page, path: str) -> None:
    """Wait until page `path` shows its heading, its script run is over and its charts have drawn."""
    await page.get_by_role("heading", name=PAGES[path], exact=True).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    await page.locator(SCRIPT_DONE).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    await page.wait_for_function(CHARTS_DRAWN, timeout=PAGE_TIMEOUT_S * 1000)
    exceptions = page.locator('[data-testid="stException"]')
    if await exceptions.count():
        raise RuntimeError(f"Python exception shown: {(await exceptions.first.inner_text())[:200]}")


async def session(browser, url: str, paths: list[str], index: int, arrive_s: float, stop_at: float,
                  load: Load) -> None:
    """One user: a fresh browser context that opens the app at one page, then clicks through the others
    in the sidebar (as a person does: one session, no reload) until `stop_at`."""
    await asyncio.sleep(arrive_s)
    think = random.Random(index)
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.on("pageerror", lambda error: load.errors.append(f"session {index}: JavaScript error: {error}"))
    for step in itertools.count(index):
        if time.monotonic() >= stop_at:
            break
        path = paths[step % len(paths)]
        start = time.perf_counter()
        try:
            if step == index:
                await page.goto(f"{url}/{path}", timeout=PAGE_TIMEOUT_S * 1000)
            else:
                await page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]').click(
                    timeout=PAGE_TIMEOUT_S * 1000)
            await rendered(page, path)
            load.times[path].append(time.perf_counter() - start)
            await asyncio.sleep(think.uniform(*THINK_S))
        except Exception as error:  # every failure of a page view counts, whatever raised it
            load.errors.append(f"session {index}, /{path}: {type(error).__name__}: {str(error)[:300]}")
            await page.goto(f"{url}/{path}", timeout=PAGE_TIMEOUT_S * 1000)  # start afresh
    await context.close()


async def served_pages(browser, url: str) -> list[str]:
    """The url paths of PAGES that the running app lists in its navigation."""
    page = await browser.new_page()
    await page.goto(f"{url}/{next(iter(PAGES))}")
    await page.locator(SCRIPT_DONE).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    hrefs = [await link.get_attribute("href") or "" for link in await page.locator("a[href]").all()]
    await page.close()
    listed = {href.rstrip("/").rsplit("/", 1)[-1] for href in hrefs}
    return [path for path in PAGES if path in listed]


async def drive(url: str, sessions: int, seconds: float) -> tuple[list[str], Load]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            paths = await served_pages(browser, url)
            load = Load()
            before = cpu_by_role()
            stop_at = time.monotonic() + RAMP_S + seconds
            await asyncio.gather(*(session(browser, url, paths, index, RAMP_S * index / sessions, stop_at, load)
                                   for index in range(sessions)))
            load.cpu = {role: used - before[role] for role, used in cpu_by_role().items()}
        finally:
            await browser.close()
    return paths, load


def _process_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds so far), from /proc (empty where there is none)."""
    table = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        table[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / tick)
    return table


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by this benchmark's own children: the dashboard server and the browser."""
    table = _process_table()

    def ours(pid: int) -> bool:
        while pid in table and pid > 1:
            pid = table[pid][0]
            if pid == os.getpid():
                return True
        return False

    roles = {"dashboard server": 0.0, "browser": 0.0}
    for pid, (_, command, seconds) in table.items():
        if ours(pid) and "streamlit" in command:
            roles["dashboard server"] += seconds
        elif ours(pid) and "chromium" in command:
            roles["browser"] += seconds
    return roles


def demo_shaped_store(root: Path) -> Path:
    """A synthetic store shaped like the demo: 11 models, 19 corruptions x 3 severities, 360 samples."""
    return write_store(root, num_models=11, num_samples=360, corruptions=corruptions.NAMES, severities=(1, 3, 5))


def run_load(store: Path | None = None, sessions: int = SESSIONS, seconds: float = SECONDS) -> Load:
    """Serve `store` (data/demo, else a demo-shaped synthetic store), drive the sessions, print the report."""
    with tempfile.TemporaryDirectory() as scratch:
        if store is None and (DEMO / "manifest.json").exists():
            store = DEMO
        if store is None:
            print(f"{DEMO} is missing: a synthetic store of the demo's shape stands in "
                  f"(build the demo with `python -m compute demo --out {DEMO}`)")
            store = demo_shaped_store(Path(scratch) / "store")
        with dashboard(store) as url:
            start = time.perf_counter()
            paths, load = asyncio.run(drive(url, sessions, seconds))
            wall = time.perf_counter() - start
    report(store, paths, load, sessions, wall)
    return load


def report(store: Path, paths: list[str], load: Load, sessions: int, wall: float) -> None:
    times = load.all_times()
    print(f"store {store}; {sessions} concurrent browser sessions for {wall:.0f} s over pages: {', '.join(paths)}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; CPU used meanwhile: "
          + ", ".join(f"{role} {seconds:.0f} s" for role, seconds in load.cpu.items()))
    print(f"page views: {len(times)}   errors: {len(load.errors)} (goal 0)")
    if times:
        print("CPU per page view: " + ", ".join(f"{role} {used / len(times):.2f} s" for role, used in load.cpu.items()))
    if times:
        print(f"page time  p50 {percentile(times, 50):6.2f} s   p95 {percentile(times, 95):6.2f} s   "
              f"max {times[-1]:6.2f} s   (goal p95 <= 5 s)")
        for path in paths:
            values = sorted(load.times[path])
            if values:
                print(f"  /{path:<12} {len(values):4d} views   p50 {percentile(values, 50):6.2f} s   "
                      f"p95 {percentile(values, 95):6.2f} s")
    for error in load.errors[:10]:
        print(f"  error: {error}")


def main() -> None:
    run_load()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="20 concurrent browser sessions through every dashboard page.")
    parser.add_argument("--store", type=Path, default=None, help="store to serve (default: data/demo)")
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    arguments = parser.parse_args()
    run_load(arguments.store, arguments.sessions, arguments.seconds)
