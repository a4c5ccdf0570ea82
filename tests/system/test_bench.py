"""`make bench` runs every module of bench.BENCHMARKS: each must import and expose main(), and the helpers
one benchmark borrows from another must exist (bench.uncertainty times with bench.queries' helpers)."""

from __future__ import annotations

import importlib

import pytest

from bench import queries
from bench.__main__ import BENCHMARKS


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_imports_and_has_a_main(name) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.main)


def test_timed_and_report_print_one_line_with_the_goal(capsys) -> None:
    figures = queries.timed(lambda: sum(range(1000)), repeats=2)
    assert figures[3] == sum(range(1000)) and all(value >= 0 for value in figures[:3])
    queries.report("a query", figures, 1e-9)
    line = capsys.readouterr().out.strip()
    assert line.startswith("a query") and line.endswith("MISSED")


def test_bench_store_reads_row_counts_and_names_a_bad_one(capsys) -> None:
    from bench import store

    assert store.parse_rows("100M") == 100_000_000 and store.parse_rows("2.5k") == 2_500
    with pytest.raises(SystemExit):
        store.main(["--rows", "lots", "--out", "x"])
    assert "--rows 'lots' is not a positive count like 100M" in capsys.readouterr().err


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_bench_store_writes_a_sweep_through_the_writer_with_seeds_and_derived_files(tmp_path) -> None:
    from bench import store
    from store import aggregates, reader, sample_index

    root = store.build(tmp_path / "s", rows=10, num_samples=12, workers=1)  # one model: the dense one
    models = store.model_rows(34)  # per seed: dense + 8 methods x 4 sparsities, then the next seed
    assert [m["seed"] for m in models[32:]] == [0, 1] and models[33]["method"] == "dense"
    assert len(reader.complete_partitions(root)) == len(store.SETTINGS)
    assert sample_index.is_fresh(root) and aggregates.is_fresh(root)


def test_bench_profile_splits_py_spy_stacks_by_page() -> None:
    from bench.profile import split_by_page, summary

    runner = ("Thread.run (threading.py);ScriptRunner._run_script (streamlit/runtime/scriptrunner/script_runner.py);"
              "<module> (/work/x/dashboard/app.py)")
    raw = "\n".join([
        f"{runner};Page.run (streamlit/navigation/page.py);<module> (similarity.py);"
        "model_agreement (/work/x/analysis/agreement.py);kappa_interval (/work/x/analysis/stats.py) 30",
        f"{runner};Page.run (streamlit/navigation/page.py);<module> (similarity.py);chart (/work/x/dashboard/linking.py) 10",
        f"{runner};sidebar (/work/x/dashboard/sidebar.py);Catalog.__init__ (/work/x/store/catalog.py) 5",
        "Thread.run (threading.py);ScriptRunner._on_script_finished (streamlit/runtime/scriptrunner/script_runner.py) 7",
        "select (selectors.py) 3",
    ])
    pages = split_by_page(raw)
    assert {page: sum(c for _, c in stacks) for page, stacks in pages.items()} == {
        "similarity": 40, "sidebar": 5, "script runner": 7, "server": 3}
    text = summary(raw, {"similarity": 2}, rate=10, top=3)
    assert "### similarity: 40 samples (73 %), 2.000 CPU-s per view over 2 views" in text
    assert "| 30 | 75 | inclusive | `model_agreement` | analysis/agreement.py |" in text


@pytest.mark.parametrize(("sessions", "p95", "verdict"), [(20, 0.9, "goal p95 <= 1 s at 20 sessions: met"),
                                                         (50, 1.9, "goal p95 <= 2 s at 50 sessions: met"),
                                                         (50, 2.1, "goal p95 <= 2 s at 50 sessions: MISSED"),
                                                         (7, 9.0, "no goal at 7 sessions")])
def test_bench_load_judges_each_run_by_the_goal_for_its_sessions(capsys, sessions, p95, verdict) -> None:
    from pathlib import Path

    from bench import load

    run = load.Load()
    run.times["overview"] = [p95] * 10
    load.report(Path("store"), ["overview"], run, sessions, 60.0)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("page view  p50"))
    assert line.endswith(f"({verdict})") and f"p95 {p95:6.2f} s" in line
