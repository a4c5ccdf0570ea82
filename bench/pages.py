"""Dashboard page times in a real browser: each page's time to rendered content on the demo, a large and a
many-class store.

Time to rendered content = from the click on the page's sidebar link until its script has finished, every
chart has drawn its marks and a chart, table, image or explanation is on screen (testkit.browser.navigate),
in Debian's Chromium. Each store gets a fresh server; the app is opened once, then every page is visited
twice through the sidebar: cold (empty query caches, first use of the page in that server) and warm
(cached query results, as any later visit sees it). The first cold page also pays for the app's first
run in the server (imports, opening the store): that is the `open` row, the Overview opened by its URL.

Stores: the demo (data/demo, built when missing), a large synthetic study of 20 models x 96 settings x
10,000 samples, about 19 million prediction rows (bench/out/queries-store from `bench.queries` when it is
there, else written here), and a study of many classes: 1,000 classes, 20 models, 5,000 samples, clean and
3 corruptions x 5 severities, with embeddings (rows keep the top-10 classes and the true one, as extraction
does). Goal: at most 3 s per page, cold and warm, on the large and the many-class stores.

    python -m bench pages                                        # all three stores (make bench)
    python -m bench.pages --classes 1000 --models 20 [--samples 5000] [--corruptions 3]   # one class study

Server time on any store, no browser (`python -m bench pages --store DIR`, e.g. the 100M-row store of
`python -m bench store`): a fresh server, one session over Streamlit's websocket (bench.load.Session);
the first page view (the Overview, which pays for imports and opening the store; goal <= 2 s), then each
page with the default selection and with SELECTIONS random sidebar selections (model, corruption,
severity), each view's time from the request to the end of its script run; goal p95 <= 1 s per page.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.load import PAGE_TIMEOUT_S, Session, logged, percentile, timing_env
from dashboard.pages import PAGES
from testkit.browser import VIEWPORT, chromium, dashboard, navigate, visit
from testkit.synthetic import write_store

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
OUT = Path(__file__).resolve().parent / "out"
LARGE_CANDIDATES = (OUT / "queries-store", OUT / "pages-store")  # the first is bench.queries' store
GOAL_SECONDS = 3.0
SELECTIONS = 20
SERVER_GOAL_S = 1.0  # p95 of a page's server time, default and random selections (issue 21)
OPEN_GOAL_S = 2.0  # a fresh server's first page


def demo_store() -> Path:
    """data/demo, built by `python -m compute demo` when it is missing."""
    if not (DEMO / "models.parquet").is_file():
        from compute.__main__ import main as compute

        if compute(["demo", "--out", str(DEMO)]) != 0:
            raise RuntimeError("building the demo store failed")
    return DEMO


def large_store() -> Path:
    """A complete ~19M-row synthetic store: reused when present, else written (tens of minutes)."""
    for candidate in LARGE_CANDIDATES:
        if (candidate / "models.parquet").is_file():
            return candidate
    from compute.corruptions import NAMES

    return write_store(LARGE_CANDIDATES[-1], num_models=20, num_samples=10_000, corruptions=NAMES)


def page_times(store: Path) -> dict[str, tuple[float, float]]:
    """(cold, warm) seconds to rendered content per page, on a fresh server for `store`; `open` is the
    first load of the app (by URL, the Overview) and its reload; `open (server)` the server's own time of
    those two script runs (imports, opening the store, the first queries), from its timing log."""
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "timing.log"
        with dashboard(store, timeout=180, env=timing_env(log)) as url, chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            opened = visit(page, url, "overview", timeout=300)
            first_run = [seconds for path, seconds in logged(log) if path == "overview"][:1]
            pages = [path for path in PAGES if path != "overview"] + ["overview"]
            cold = {path: navigate(page, path, timeout=300) for path in pages}
            warm = {path: navigate(page, path, timeout=300) for path in pages}
            before = len(logged(log))
            reopened = visit(page, url, "overview", timeout=300)
            again = [seconds for path, seconds in logged(log)[before:] if path == "overview"][:1]
    server = (first_run[0] if first_run else float("nan"), again[0] if again else float("nan"))
    return {"open": (opened, reopened), "open (server)": server,
            **{path: (cold[path], warm[path]) for path in PAGES}}


def classes_store(classes: int, models: int, samples: int, corruptions: int) -> Path:
    """A synthetic study of `classes` classes (names like an ImageNet synset's, not indices) with embeddings
    (random coordinates), so every page has its content: reused when present under bench/out, else written."""
    from compute.corruptions import NAMES

    root = OUT / f"pages-{classes}classes-{models}models-{samples}samples-{corruptions}corruptions"
    if (root / "models.parquet").is_file():
        return root
    names = [f"n{c:08d} synthetic class {c}" for c in range(classes)]
    return write_store(root, num_models=models, num_samples=samples, corruptions=NAMES[:corruptions],
                       num_classes=classes, class_names=names, embeddings=True)


def verdict(cold: float, warm: float) -> str:
    return "ok" if max(cold, warm) <= GOAL_SECONDS else ("warm ok" if warm <= GOAL_SECONDS else "SLOW")


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def print_classes(name: str, times: dict[str, tuple[float, float]]) -> None:
    print(f"page time to rendered content on {name}, seconds; goal <= {GOAL_SECONDS:.0f} s cold and warm ({load()})")
    print(f"{'page':<13} {'cold':>7} {'warm':>7}  goal")
    for path, (cold, warm) in times.items():
        print(f"{path:<13} {cold:>7.2f} {warm:>7.2f}  {verdict(cold, warm)}")


async def _server_views(url: str, selections: int) -> tuple[float, dict[str, list[float]], list[str]]:
    """(first page view, per page: the default selection's time then each random selection's, errors)."""
    import random
    import time

    import websockets

    rng = random.Random(0)
    errors: list[str] = []
    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                  max_size=None, open_timeout=PAGE_TIMEOUT_S) as socket:
        visitor = Session(socket)
        start = time.perf_counter()
        errors += await visitor.view("overview")
        first = time.perf_counter() - start
        times: dict[str, list[float]] = {}
        for path in PAGES:
            defaults = await visitor.view(path, visitor.pages[path], visitor.default_selection())
            errors += defaults
            times[path] = []
            for states in [visitor.default_selection()] + [visitor.random_selection(rng) for _ in range(selections)]:
                start = time.perf_counter()
                errors += [f"/{path}: {error}" for error in await visitor.view(path, visitor.pages[path], states)]
                times[path].append(time.perf_counter() - start)
    return first, times, errors


def server_times(store: Path, selections: int = SELECTIONS) -> None:
    """Print each page's server time on a fresh server for `store`, beside the goals."""
    import asyncio

    with dashboard(store, timeout=300) as url:
        first, times, errors = asyncio.run(_server_views(url, selections))
    print(f"server time per page view on {store}, seconds: default selection and {selections} random "
          f"selections, warm server ({load()}; a shared machine)")
    print(f"fresh server's first page (overview): {first:.2f} s   goal <= {OPEN_GOAL_S:g} s: "
          f"{'met' if first <= OPEN_GOAL_S else 'MISSED'}")
    print(f"{'page':<13} {'default':>8} {'p50':>7} {'p95':>7} {'max':>7}  goal p95 <= {SERVER_GOAL_S:g} s")
    for path, values in times.items():
        ordered = sorted(values)
        p95 = percentile(ordered, 95)
        print(f"{path:<13} {values[0]:>8.2f} {percentile(ordered, 50):>7.2f} {p95:>7.2f} {ordered[-1]:>7.2f}  "
              f"{'met' if p95 <= SERVER_GOAL_S else 'MISSED'}")
    print(f"errors: {len(errors)} (goal 0)" + "".join(f"\n  {error}" for error in errors[:10]))
    print(load())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, help="time only a synthetic study of this many classes")
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--corruptions", type=int, default=3, help="the first N corruptions, 5 severities each")
    parser.add_argument("--store", type=Path, help="only the server time of every page on this store (no browser)")
    parser.add_argument("--selections", type=int, default=SELECTIONS, help="random selections per page (--store)")
    options = parser.parse_args([] if argv is None else argv)
    if options.store:
        server_times(options.store, options.selections)
        return
    many = classes_store(options.classes or 1000, options.models, options.samples, options.corruptions)
    label = f"{many.name} (a synthetic study of {options.classes or 1000} classes)"
    if options.classes:
        print_classes(label, page_times(many))
        return
    stores = {"demo": demo_store(), "large": large_store()}
    times = {name: page_times(path) for name, path in stores.items()}
    print(f"page time to rendered content, seconds (cold: first visit on a fresh server; warm: second); "
          f"goal <= {GOAL_SECONDS:.0f} s on large ({load()})")
    print(f"{'page':<13} {'demo cold':>10} {'demo warm':>10} {'large cold':>11} {'large warm':>11}  goal")
    for path in ("open", "open (server)", *PAGES):
        (demo_cold, demo_warm), (large_cold, large_warm) = times["demo"][path], times["large"][path]
        print(f"{path:<13} {demo_cold:>10.2f} {demo_warm:>10.2f} {large_cold:>11.2f} {large_warm:>11.2f}  "
              f"{verdict(large_cold, large_warm)}")
    print()
    print_classes(label, page_times(many))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
