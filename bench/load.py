"""Dashboard under load: 20 concurrent real browser sessions walk through every page for a bounded time.

One headless Debian Chromium holds 20 browser contexts (separate cookies and Streamlit sessions), all
driven at once through Playwright's async API against one `streamlit run dashboard/app.py` server on
127.0.0.1. Sessions arrive over the first 10 s; each opens the app at a different page, then clicks
through all pages in turn in the sidebar, looking at each for 2-5 s, as a person does. A page's time
runs from the click (or the first navigation) until its script run is over and every chart has drawn;
an error is a page that shows a Python exception, a JavaScript error, or one that does not render
within the page timeout. Goals: 0 errors, p95 page time <= 5 s on 2 cores. The browsers share the
machine with the server, so the report also gives the CPU each used: which side limits page time, and
the server's own time per page view (p50/p95, goal p95 <= 1 s): the script run of each page view, from
$PRUNESCOPE_TIMING_LOG, which the dashboard appends to (dashboard/app.py).

Interference (`--interference`): one visitor's page times alone, then while another visitor runs the most
expensive filter (every prediction row, new text each time so no cache answers) in several tabs; goal:
at most 2x slower (the dashboard runs one filter per visitor at a time, dashboard.guard.one_filter_at_a_time).

    python -m bench.load [--store DIR] [--sessions 20] [--seconds 60] [--interference [--tabs 3]]

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

from compute import corruptions
from dashboard.pages import PAGES
from testkit.browser import CHARTS_DRAWN, CHROMIUM, CHROMIUM_ARGS, SCRIPT_DONE, VIEWPORT, dashboard
from testkit.synthetic import write_store

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
    server: list[float] = field(default_factory=list)  # the server's own seconds per page view

    def all_times(self) -> list[float]:
        return sorted(t for times in self.times.values() for t in times)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted `values`, by linear interpolation."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


async def rendered(page, path: str) -> None:
    """Wait until page `path` shows its heading, its script run is over and its charts have drawn."""
    await page.get_by_role("heading", name=PAGES[path].title, exact=True).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
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


async def drive(url: str, sessions: int, seconds: float) -> tuple[list[str], Load]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            paths = list(PAGES)
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
        log = Path(scratch) / "timing.log"
        with dashboard(store, env=timing_env(log)) as url:
            start = time.perf_counter()
            paths, load = asyncio.run(drive(url, sessions, seconds))
            wall = time.perf_counter() - start
        load.server = server_times(log)
    report(store, paths, load, sessions, wall)
    return load


def timing_env(log: Path) -> dict[str, str]:
    """The server's environment with its per-page-view timing log switched on."""
    return {**os.environ, "PRUNESCOPE_TIMING_LOG": str(log)}


def server_times(log: Path) -> list[float]:
    """Seconds of each page view's script run in the server (the root URL's hop to the Overview left out)."""
    if not log.is_file():
        return []
    rows = [line.split("\t") for line in log.read_text().splitlines() if "\t" in line]
    return sorted(float(seconds) for page, seconds in rows if page != "home")


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
        if load.server:
            print(f"server time per page view (script run): p50 {percentile(load.server, 50):6.2f} s   "
                  f"p95 {percentile(load.server, 95):6.2f} s   max {load.server[-1]:6.2f} s   "
                  f"over {len(load.server)} runs   (goal p95 <= 1 s)")
        for path in paths:
            values = sorted(load.times[path])
            if values:
                print(f"  /{path:<12} {len(values):4d} views   p50 {percentile(values, 50):6.2f} s   "
                      f"p95 {percentile(values, 95):6.2f} s")
    for error in load.errors[:10]:
        print(f"  error: {error}")


# -- interference: one visitor's expensive filters against another visitor's pages ---------------------------

EXPENSIVE_FILTER = "angle_true > {a} or margin < -{b}"  # unscoped: every prediction row of the store
MEASURED = ("overview", "matrix", "local", "global", "samples")


async def filter_tab(context, url: str, index: int, stop: asyncio.Event, runs: list[int]) -> None:
    """One tab of the busy visitor: the free filter over the whole store, a new text each time."""
    page = await context.new_page()
    await page.goto(f"{url}/samples", timeout=PAGE_TIMEOUT_S * 1000)
    await rendered(page, "samples")
    main = page.get_by_test_id("stMain")
    await main.get_by_role("radio", name="filter", exact=True).click()
    await page.get_by_label("Filter", exact=True).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    await main.get_by_test_id("stCheckbox").first.click()  # not only the selected model: the whole store
    await asyncio.sleep(0.5)
    box = page.get_by_label("Filter", exact=True)
    step = 0
    while not stop.is_set():
        step += 1
        await box.fill(EXPENSIVE_FILTER.format(a=(7 * step + index) % 90 + 0.5, b=step + index / 10))
        await box.press("Enter")
        await asyncio.sleep(0.3)
        await page.locator(SCRIPT_DONE).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
        runs[0] += 1


async def visitor_times(browser, url: str, rounds: int) -> list[float]:
    """A fresh visitor's page times through MEASURED, `rounds` times, in the sidebar."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{url}/{MEASURED[0]}", timeout=PAGE_TIMEOUT_S * 1000)
    await rendered(page, MEASURED[0])
    times = []
    for _ in range(rounds):
        for path in MEASURED[1:] + MEASURED[:1]:
            start = time.perf_counter()
            await page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]').click()
            await rendered(page, path)
            times.append(time.perf_counter() - start)
    await context.close()
    return times


def logged(log: Path) -> list[tuple[str, float]]:
    """(page, server seconds) of every script run in the timing log so far."""
    lines = log.read_text().splitlines() if log.is_file() else []
    return [(page, float(seconds)) for page, seconds in (line.split("\t") for line in lines if "\t" in line)]


async def interfere(url: str, tabs: int, rounds: int, log: Path) -> tuple[list[float], list[float], int, list, list]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            await visitor_times(browser, url, 1)  # warm the server's caches as a running server has them
            before = len(logged(log))
            alone = await visitor_times(browser, url, rounds)
            server_alone = logged(log)[before:]
            busy = await browser.new_context(viewport=VIEWPORT)  # one visitor: its tabs share cookies
            stop, runs = asyncio.Event(), [0]
            workers = [asyncio.create_task(filter_tab(busy, url, i, stop, runs)) for i in range(tabs)]
            await asyncio.sleep(5.0)
            before = len(logged(log))
            loaded = await visitor_times(browser, url, rounds)
            server_loaded = logged(log)[before:]
            stop.set()
            await asyncio.gather(*workers, return_exceptions=True)
            await busy.close()
        finally:
            await browser.close()
    return alone, loaded, runs[0], server_alone, server_loaded


def run_interference(store: Path | None = None, tabs: int = 3, rounds: int = 2) -> float:
    """Median page time of one visitor with another visitor's `tabs` expensive filters running, over the
    same visitor's median alone; prints both."""
    with tempfile.TemporaryDirectory() as scratch:
        if store is None:
            store = DEMO if (DEMO / "manifest.json").exists() else demo_shaped_store(Path(scratch) / "store")
        log = Path(scratch) / "timing.log"
        with dashboard(store, env=timing_env(log)) as url:
            alone, loaded, runs, server_alone, server_loaded = asyncio.run(interfere(url, tabs, rounds, log))
    ratio = statistics.median(loaded) / statistics.median(alone)
    # The server's own time for the pages the busy visitor never opens (its tabs all run on /samples).
    alone_s = [seconds for page, seconds in server_alone if page not in ("samples", "home")]
    loaded_s = [seconds for page, seconds in server_loaded if page not in ("samples", "home")]
    server_ratio = statistics.median(loaded_s) / statistics.median(alone_s) if alone_s and loaded_s else float("nan")
    print(f"store {store}; one visitor's page time over {', '.join(MEASURED)} x {rounds}, in the browser: median "
          f"alone {statistics.median(alone):.2f} s, with another visitor's {tabs} tabs of the most expensive filter "
          f"{statistics.median(loaded):.2f} s ({runs} filter runs meanwhile): {ratio:.2f}x (goal <= 2x)")
    if alone_s and loaded_s:
        print(f"  server's own time of those page views (not /samples): median alone {statistics.median(alone_s):.2f} s,"
              f" loaded {statistics.median(loaded_s):.2f} s: {server_ratio:.2f}x")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (browsers share them)")
    return ratio


def main() -> None:
    run_load()
    run_interference()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="20 concurrent browser sessions through every dashboard page.")
    parser.add_argument("--store", type=Path, default=None, help="store to serve (default: data/demo)")
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--interference", action="store_true", help="measure one visitor's slowdown by "
                        "another's expensive filters instead")
    parser.add_argument("--tabs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    if arguments.interference:
        run_interference(arguments.store, arguments.tabs, arguments.rounds)
    else:
        run_load(arguments.store, arguments.sessions, arguments.seconds)
