"""Dashboard under load: N concurrent sessions over Streamlit's own websocket protocol (no browser), and one
visitor's slowdown by another's expensive filters (in Chromium).

Load (`python -m bench load [--store DIR] [--sessions 20 50] [--seconds 60]`): one `streamlit run
dashboard/app.py` server on 127.0.0.1; each session is what a browser tab is to the server, a websocket on
/_stcore/stream speaking Streamlit's protobuf messages (BackMsg rerun_script with the page's script hash
and the sidebar's widget states; ForwardMsg deltas until script_finished), so the figures are the
server's and no browser competes for the cores. Sessions arrive over the first 10 s; each opens the app,
then visits every page in turn, and before every second page view picks a random selection in the
sidebar (model, corruption, severity), as a person does, looking at each page for 2-5 s. A page view's
time runs from the message that asks for it until the server says the script run is over; an error is a
page that shows a Python exception or does not finish within the page timeout. The server's resident
memory (RSS, its whole process tree) is sampled every 0.5 s. Goals: p95 page view <= 1 s at 20 sessions and
<= 2 s at 50; peak RSS < 4 GB; 0 errors.

Interference (`--interference`): one visitor's page times alone, then while another visitor runs the most
expensive filter (every prediction row, new text each time so no cache answers) in several tabs; goal:
at most 2x slower (the dashboard runs one filter per visitor at a time, dashboard.guard.one_filter_at_a_time).

The store is data/demo (`python -m compute demo --out data/demo`) unless --store names one; when it is
missing, a synthetic store of the demo's shape stands in, and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from compute import corruptions, stored_answers
from dashboard.pages import PAGES
from dashboard.supervise import Supervisor
from store import derived
from testkit.browser import (
    CHARTS_DRAWN,
    CHROMIUM,
    CHROMIUM_ARGS,
    SCRIPT_DONE,
    VIEWPORT,
    dashboard,
    free_port,
    wait_healthy,
)
from testkit.synthetic import write_store

DEMO = Path("data/demo")
SESSIONS = (20, 50)
SECONDS = 60.0
RAMP_S = 10.0  # sessions arrive evenly over the first seconds, as users do, not in one instant
THINK_S = (2.0, 5.0)  # a person looks at a page for a few seconds before the next click
PAGE_TIMEOUT_S = 60.0
GOAL_P95_S = {20: 1.0, 50: 2.0}  # issue 27: page view p95 per number of concurrent sessions
GOAL_RSS_GB = 4.0
SELECTED = ("Model", "Corruption", "Severity")  # the sidebar widgets a random selection sets (dashboard.sidebar)


@dataclass
class Load:
    """Page view times per url path, every error with the session and page it happened on, the CPU seconds
    the dashboard server used while the sessions ran, and its peak resident memory."""

    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    server: list[float] = field(default_factory=list)  # the server's own seconds per page view (timing log)
    peak_rss: int = 0  # bytes

    def all_times(self) -> list[float]:
        return sorted(t for times in self.times.values() for t in times)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted `values`, by linear interpolation."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


async def rendered(page, path: str) -> None:
    """Wait until page `path` shows its heading, its script run is over and its charts have drawn (Chromium)."""
    await page.get_by_role("heading", name=PAGES[path].title, exact=True).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    await page.locator(SCRIPT_DONE).wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    await page.wait_for_function(CHARTS_DRAWN, timeout=PAGE_TIMEOUT_S * 1000)
    exceptions = page.locator('[data-testid="stException"]')
    if await exceptions.count():
        raise RuntimeError(f"Python exception shown: {(await exceptions.first.inner_text())[:200]}")


class Session:
    """One visitor's websocket session: asks for page runs as the browser would and reads the answers."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.pages: dict[str, str] = {}  # url path -> page script hash (from the navigation message)
        self.widgets: dict[str, object] = {}  # label -> the sidebar widget's proto (id, options)
        self.first_values: dict[str, object] = {}  # label -> the value the sidebar first showed

    async def view(self, path: str, page_hash: str = "", states: list | None = None) -> list[str]:
        """Run page `path` (with these widget states) to the end; returns the exceptions it showed."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = BackMsg()
        message.rerun_script.page_script_hash = page_hash
        message.rerun_script.page_name = path
        message.rerun_script.widget_states.widgets.extend(states or [])
        await self.socket.send(message.SerializeToString())
        shown = []
        while True:
            answer = ForwardMsg()
            answer.ParseFromString(await asyncio.wait_for(self.socket.recv(), PAGE_TIMEOUT_S))
            kind = answer.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in answer.navigation.app_pages}
            elif kind == "delta" and answer.delta.WhichOneof("type") == "new_element":
                element = answer.delta.new_element
                widget = element.WhichOneof("type")
                if widget == "exception":
                    shown.append(f"{element.exception.type}: {element.exception.message[:200]}")
                elif widget in ("selectbox", "slider") and getattr(element, widget).label in SELECTED:
                    proto = getattr(element, widget)
                    self.widgets[proto.label] = proto
                    if proto.set_value:  # the sidebar sets every one from the session's state
                        self.first_values.setdefault(proto.label, proto.raw_value if widget == "selectbox"
                                                     else list(proto.raw_value))
            elif kind == "script_finished" and answer.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return shown

    def default_selection(self) -> list:
        """Widget states that put model, corruption and severity back where the sidebar first showed them."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        states = []
        for label, value in self.first_values.items():
            state = WidgetState(id=self.widgets[label].id)
            if label == "Severity":
                state.string_array_value.data.extend(value)
            else:
                state.string_value = value
            states.append(state)
        return states

    def random_selection(self, rng: random.Random) -> list:
        """Widget states that pick a random model, corruption and severity in the sidebar."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        states = []
        for label, widget in self.widgets.items():
            state = WidgetState(id=widget.id)
            if label == "Severity":
                state.string_array_value.data.append(rng.choice(list(widget.options)))
            else:
                state.string_value = rng.choice(list(widget.options))
            states.append(state)
        return states


async def session(url: str, paths: list[str], index: int, arrive_s: float, stop_at: float, load: Load) -> None:
    """One user: connects, opens the app at one page, then visits the others in turn until `stop_at`, a
    random sidebar selection before every second view."""
    import websockets

    await asyncio.sleep(arrive_s)
    rng = random.Random(index)
    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                  max_size=None, open_timeout=PAGE_TIMEOUT_S) as socket:
        visitor = Session(socket)
        await visitor.view(paths[index % len(paths)])  # the first open (the root URL's page)
        for step in range(index + 1, 1 << 30):
            if time.monotonic() >= stop_at:
                break
            path = paths[step % len(paths)]
            states = visitor.random_selection(rng) if step % 2 else []
            start = time.perf_counter()
            try:
                shown = await visitor.view(path, visitor.pages.get(path, ""), states)
                load.times[path].append(time.perf_counter() - start)
                load.errors.extend(f"session {index}, /{path}: {error}" for error in shown)
            except (TimeoutError, OSError) as error:
                load.errors.append(f"session {index}, /{path}: {type(error).__name__}: {str(error)[:300]}")
                return
            await asyncio.sleep(rng.uniform(*THINK_S))


async def sample_rss(pids, stop: asyncio.Event, load: Load) -> None:
    """Peak resident memory of the server's process tree, every 0.5 s until `stop`."""
    while not stop.is_set():
        load.peak_rss = max(load.peak_rss, sum(rss(pid) for pid in pids()))
        await asyncio.sleep(0.5)


def rss(pid: int) -> int:
    """Resident bytes of process `pid` (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


async def drive(url: str, sessions: int, seconds: float) -> tuple[list[str], Load]:
    paths = list(PAGES)
    load = Load()
    before = cpu_by_role()
    stop_at = time.monotonic() + RAMP_S + seconds
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server_pids, done, load))
    results = await asyncio.gather(*(session(url, paths, index, RAMP_S * index / sessions, stop_at, load)
                                     for index in range(sessions)), return_exceptions=True)
    done.set()
    await sampler
    load.errors.extend(f"session {i}: {type(r).__name__}: {str(r)[:300]}" for i, r in enumerate(results)
                       if isinstance(r, BaseException))
    load.cpu = {role: used - before[role] for role, used in cpu_by_role().items()}
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


def _ours(table: dict[int, tuple[int, str, float]], pid: int) -> bool:
    """True when `pid` descends from this benchmark's process."""
    while pid in table and pid > 1:
        pid = table[pid][0]
        if pid == os.getpid():
            return True
    return False


def _is_server(command: str) -> bool:
    """A dashboard server's command line (dashboard.serve, or `streamlit run`)."""
    return "dashboard.serve" in command or "streamlit" in command


def server_pids() -> list[int]:
    """The dashboard server processes this benchmark started."""
    table = _process_table()
    return [pid for pid, (_, command, _) in table.items() if _ours(table, pid) and _is_server(command)]


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by this benchmark's own children: the dashboard server and the browser."""
    table = _process_table()
    roles = {"dashboard server": 0.0, "browser": 0.0, "proxy": 0.0}
    for pid, (_, command, seconds) in table.items():
        if _ours(table, pid) and _is_server(command):
            roles["dashboard server"] += seconds
        elif _ours(table, pid) and "chromium" in command:
            roles["browser"] += seconds
        elif _ours(table, pid) and "caddy" in command:
            roles["proxy"] += seconds
    return roles


def demo_shaped_store(root: Path) -> Path:
    """A synthetic store shaped like the demo: 11 models, 19 corruptions x 3 severities, 360 samples, with the
    derived files `compute index` builds (as extraction builds them for the demo)."""
    store = write_store(root, num_models=11, num_samples=360, corruptions=corruptions.NAMES, severities=(1, 3, 5))
    derived.build_all(store)
    stored_answers.build_all(store, progress=False)
    return store


@contextlib.contextmanager
def serving(store: Path, workers: int, env: dict[str, str], scratch: Path) -> Iterator[str]:
    """The dashboard on `store`: one Streamlit server (workers=1), else `workers` behind Caddy
    (dashboard.supervise, as `make serve WORKERS=N`), driven through the proxy; yields the URL."""
    if workers == 1:
        with dashboard(store, timeout=300, env=env) as url:
            yield url
        return
    port = free_port()
    supervisor = Supervisor(workers, port, ["--store", str(store)], env=env, log_dir=scratch)
    supervisor.start()
    try:
        for each in (*supervisor.worker_ports, port):
            wait_healthy(f"http://127.0.0.1:{each}", 300)
        yield f"http://127.0.0.1:{port}"
    finally:
        supervisor.stop()


def run_load(store: Path | None = None, sessions: tuple[int, ...] = SESSIONS, seconds: float = SECONDS,
             workers: int = 1) -> list[Load]:
    """Serve `store` (data/demo, else a demo-shaped synthetic store) on one server (or `workers` behind the
    proxy), drive each number of sessions in turn, print the reports."""
    loads = []
    with tempfile.TemporaryDirectory() as scratch:
        if store is None and (DEMO / "manifest.json").exists():
            store = DEMO
        if store is None:
            print(f"{DEMO} is missing: a synthetic store of the demo's shape stands in "
                  f"(build the demo with `python -m compute demo --out {DEMO}`)")
            store = demo_shaped_store(Path(scratch) / "store")
        log = Path(scratch) / "timing.log"
        with serving(store, workers, timing_env(log), Path(scratch)) as url:
            for count in sessions:
                before = len(logged(log))
                start = time.perf_counter()
                paths, load = asyncio.run(drive(url, count, seconds))
                wall = time.perf_counter() - start
                load.server = sorted(seconds for page, seconds in logged(log)[before:] if page != "home")
                report(store, paths, load, count, wall, workers)
                loads.append(load)
    return loads


def timing_env(log: Path) -> dict[str, str]:
    """The server's environment with its per-page-view timing log switched on."""
    return {**os.environ, "PRUNESCOPE_TIMING_LOG": str(log)}


def report(store: Path, paths: list[str], load: Load, sessions: int, wall: float, workers: int = 1) -> None:
    times = load.all_times()
    print(f"store {store}; {sessions} concurrent websocket sessions for {wall:.0f} s over pages: {', '.join(paths)}"
          f"{f'; {workers} workers behind Caddy' if workers > 1 else ''}")
    print(f"machine: {os.cpu_count()} cores (shared), load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} at the end; server CPU meanwhile "
          f"{load.cpu.get('dashboard server', 0.0):.0f} s")
    print(f"page views: {len(times)}   errors: {len(load.errors)} (goal 0)")
    if times:  # CPU per view does not depend on the neighbours' load as wall time does
        print(f"server CPU per page view {load.cpu.get('dashboard server', 0.0) / len(times):.2f} s")
    rss_gb = load.peak_rss / 1e9
    print(f"server peak RSS {rss_gb:.2f} GB   (goal < {GOAL_RSS_GB:g} GB: {'met' if rss_gb < GOAL_RSS_GB else 'MISSED'})")
    if times:
        p95 = percentile(times, 95)
        goal = GOAL_P95_S.get(sessions)
        verdict = (f"goal p95 <= {goal:g} s at {sessions} sessions: {'met' if p95 <= goal else 'MISSED'}"
                   if goal is not None else f"no goal at {sessions} sessions")
        print(f"page view  p50 {percentile(times, 50):6.2f} s   p95 {p95:6.2f} s   max {times[-1]:6.2f} s   ({verdict})")
        if load.server:
            print(f"server script run per page view: p50 {percentile(load.server, 50):6.2f} s   "
                  f"p95 {percentile(load.server, 95):6.2f} s   over {len(load.server)} runs")
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="store to serve (default: data/demo)")
    parser.add_argument("--sessions", type=int, nargs="+", default=list(SESSIONS),
                        help="concurrent sessions, one run per number (default: 20 50)")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="how long each run lasts after the ramp")
    parser.add_argument("--interference", action="store_true", help="measure one visitor's slowdown by "
                        "another's expensive filters instead (Chromium)")
    parser.add_argument("--workers", type=int, default=1, help="Streamlit workers behind Caddy, as `make serve "
                        "WORKERS=N` (default 1: one server, no proxy)")
    parser.add_argument("--tabs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args([] if argv is None else argv)
    if options.interference:
        run_interference(options.store, options.tabs, options.rounds)
        return
    run_load(options.store, tuple(options.sessions), options.seconds, options.workers)
    if argv is None:  # make bench: both measurements
        run_interference()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
