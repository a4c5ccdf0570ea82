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
