"""Where the dashboard server's CPU goes, page by page, under load: `python -m bench profile [--store DIR]
[--sessions 20] [--seconds 40] [--top 12] [--out FILE]`.

It runs bench.load's sessions (the same server, pages, selections and think times) with py-spy sampling
the server process (`py-spy record --format raw --nolineno`, on-CPU samples only, at --rate per second),
then splits the samples by the page whose script (dashboard/views/<page>.py) is on the stack; the sidebar's
own work before a page runs counts as `sidebar`, the rest (Tornado, websockets, Streamlit's session
machinery) as `server`. Per page it prints its share of the samples, the CPU seconds per page view it
stands for (samples / rate / views of that page: an estimate, sampling misses short calls), and the
functions that hold the most samples (inclusive: the function and everything it calls), by name and file,
which is the top-costs table of the issue-27 closing note. py-spy is a benchmark-only dependency
(requirements-bench.txt) and reads another process's memory: run it as the user that runs the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.load import SECONDS, demo_shaped_store, drive, logged, report, server_pids, timing_env
from testkit.browser import dashboard

RATE = 50  # samples per second
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")
_PAGE = re.compile(r"dashboard/views/(?P<page>\w+)\.py$")


def frame(text: str) -> tuple[str, str]:
    """'function (path/to/file.py)' -> (function, the path from its last 'site-packages/' or repository root)."""
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    path = match["file"]
    if "site-packages/" in path:
        return match["function"], path.split("site-packages/", 1)[1]
    for top in ("/analysis/", "/bench/", "/compute/", "/dashboard/", "/store/", "/testkit/"):
        if top in path:  # a file of the repository: its path from the repository's root
            return match["function"], top[1:] + path.rsplit(top, 1)[1]
    return match["function"], path.split("lib/python3", 1)[-1].split("/", 1)[-1] if "lib/python3" in path else path


def split_by_page(raw: str) -> dict[str, list[tuple[list[tuple[str, str]], int]]]:
    """py-spy's raw (collapsed) stacks, `frame;frame;... count` outermost first, grouped by page: the frames
    below the page's script (or below the sidebar), with their sample counts."""
    pages: dict[str, list[tuple[list[tuple[str, str]], int]]] = defaultdict(list)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame(text) for text in stack.split(";")]
        page, below = "server", frames
        if any(path.endswith("dashboard/app.py") for _, path in frames):
            page = "app"  # the app script outside the sidebar and the pages (navigation, page config, ...)
        elif any(function.startswith("ScriptRunner.") for function, _ in frames):
            page = "script runner"  # Streamlit's work around a script run (widget states, messages)
        for position, (function, path) in enumerate(frames):
            found = _PAGE.search(path)
            # py-spy names a script run by Streamlit's Page.run by its file name alone
            if found or (function == "<module>" and position and frames[position - 1][0] == "Page.run"):
                page, below = (found["page"] if found else Path(path).stem), frames[position + 1:]
                break
            if path.endswith("dashboard/sidebar.py") and function == "sidebar":
                page, below = "sidebar", frames[position + 1:]
                break
        pages[page].append((below, int(count)))
    return pages


OWN = ("dashboard/", "analysis/", "store/")  # prunescope's layers a page calls


def top_costs(stacks: list[tuple[list[tuple[str, str]], int]], top: int) -> list[tuple[int, str, str, str]]:
    """The `top` functions of prunescope holding the most samples (inclusive: each stack counts once per
    function in it), then the `top` leaf functions (where the samples were taken: self time)."""
    inclusive: Counter = Counter()
    leaves: Counter = Counter()
    for frames, count in stacks:
        for key in {f for f in frames if any(part in f[1] for part in OWN)}:
            inclusive[key] += count
        if frames:
            leaves[frames[-1]] += count
    return ([(count, "inclusive", function, path) for (function, path), count in inclusive.most_common(top)]
            + [(count, "self", function, path) for (function, path), count in leaves.most_common(top)])


def summary(raw: str, views: dict[str, int], rate: int, top: int) -> str:
    """Markdown: per page, its samples, CPU seconds per view and its top functions."""
    pages = split_by_page(raw)
    total = sum(count for stacks in pages.values() for _, count in stacks) or 1
    lines = [f"py-spy, {rate} samples/s on CPU; {total} samples ({total / rate:.1f} CPU-s sampled)", ""]
    for page, stacks in sorted(pages.items(), key=lambda item: -sum(c for _, c in item[1])):
        samples = sum(count for _, count in stacks)
        count = views.get(page, 0)
        per_view = f", {samples / rate / count:.3f} CPU-s per view over {count} views" if count else ""
        lines.append(f"### {page}: {samples} samples ({100 * samples / total:.0f} %){per_view}")
        lines.append("")
        lines.append("| samples | % of page | kind | function | file |")
        lines.append("|---:|---:|---|---|---|")
        for hits, kind, function, path in top_costs(stacks, top):
            lines.append(f"| {hits} | {100 * hits / samples:.0f} | {kind} | `{function}` | {path} |")
        lines.append("")
    return "\n".join(lines)


def run(store: Path | None, sessions: int, seconds: float, rate: int, top: int, out: Path | None,
        keep_raw: Path | None = None) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory() as scratch:
        if store is None:
            store = demo_shaped_store(Path(scratch) / "store")
            print(f"a synthetic store of the demo's shape: {store}")
        log, raw = Path(scratch) / "timing.log", Path(scratch) / "profile.txt"
        with dashboard(store, timeout=300, env=timing_env(log)) as url:
            (pid,) = server_pids()[:1]
            sampler = subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--nolineno",
                                        "--rate", str(rate), "--output", str(raw), "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
            start = time.perf_counter()
            paths, load = asyncio.run(drive(url, sessions, seconds))
            load.server = sorted(s for page, s in logged(log) if page != "home")
            sampler.send_signal(signal.SIGINT)
            _, errors = sampler.communicate(timeout=60)
            report(store, paths, load, sessions, time.perf_counter() - start)
        if not raw.is_file():
            raise RuntimeError(f"py-spy wrote no profile: {errors.decode(errors='replace')[-500:]}")
        if keep_raw:
            shutil.copy(raw, keep_raw)
        text = summary(raw.read_text(), {path: len(times) for path, times in load.times.items()}, rate, top)
    heading = (f"store {store}; {sessions} sessions for {seconds:g} s; load average "
               f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores (shared)\n\n")
    if out:
        out.write_text(heading + text + "\n")
    print(heading + text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="store to serve (default: a demo-shaped synthetic one)")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--rate", type=int, default=RATE, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=12, help="functions shown per page")
    parser.add_argument("--out", type=Path, default=None, help="also write the summary (Markdown) here")
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's raw stacks here")
    options = parser.parse_args([] if argv is None else argv)
    run(options.store, options.sessions, options.seconds, options.rate, options.top, options.out, options.raw)


if __name__ == "__main__":
    main(sys.argv[1:])
