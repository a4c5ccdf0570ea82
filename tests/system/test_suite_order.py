"""The suite's own scheduling (tests/conftest.py): the longest modules are collected first, so pytest-xdist
never ends a run on one long module while the other worker idles."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_first(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """tests/conftest.py's RUN_FIRST, from the loaded conftest (a test module imports no other module of
    the suite)."""
    conftest = next(plugin for plugin in request.config.pluginmanager.get_plugins()
                    if Path(getattr(plugin, "__file__", "") or "") == ROOT / "tests" / "conftest.py")
    return conftest.RUN_FIRST


def test_every_module_named_to_run_first_exists(run_first) -> None:
    assert run_first and [path for path in run_first if not (ROOT / path).is_file()] == []
    assert len(set(run_first)) == len(run_first)


def test_the_collected_tests_start_with_those_modules_in_their_order(request, run_first) -> None:
    modules = list(dict.fromkeys(item.nodeid.split("::")[0] for item in request.session.items))
    named = [module for module in modules if module in run_first]
    assert modules[:len(named)] == named == [path for path in run_first if path in named]
