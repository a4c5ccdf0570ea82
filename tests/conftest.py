"""Fixtures any test module may ask for: what is expensive is built once per session and shared read-only.

- `synthetic_store(**sizes)`: a synthetic store (testkit.synthetic.write_store's arguments), written once per
  session for each set of arguments; never change it, copy it with `pristine_copy` first.
- `pristine_copy(store)`: this test's own copy of a shared store, to damage or extend.
- `checkpoints`: two small digits CNN checkpoints (seeds 0 and 1), saved once; read them, never change them.
- `two_shards`: the first checkpoint extracted as two shards (1/2, then 0/2), once; read it, never change it.
- `cli(*args)`: `python -m compute ...` in this process (compute.__main__.main): returncode, stdout, stderr.
- `open_page(store, page, **selection)`: a dashboard page under streamlit's AppTest on `store`.

Plain functions that benchmarks use as well live in testkit, not here. Each layer's folder has a conftest.py for
the fixtures of that layer's tests only.

Under pytest-xdist (`make test PYTEST_WORKERS=N`: `--dist loadscope`, so each module runs on one worker and
builds its module fixtures once) every test writes under its own tmp_path, servers take a free port, and the
md5 cache ($XDG_CACHE_HOME) is one per session, never the user's.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from compute.__main__ import main
from testkit import extraction
from testkit.app import open_app
from testkit.synthetic import write_store


@pytest.fixture(scope="session", autouse=True)
def own_cache_home(tmp_path_factory) -> Iterator[None]:
    """$XDG_CACHE_HOME (the md5 cache of compute.datasets.checksums) in this session's tmp folder: tests never
    read or write the user's cache, and parallel workers never share one. Tests may still monkeypatch it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets its share of the cores: torch here, and OpenMP in every process a
    test starts, use cores // workers threads. Two workers of two threads each on two cores made the suite
    spend half again as much CPU time as one serial run (OpenMP threads spin while they wait).

    Extraction times each model's latency once per batch size, not three times (compute.footprint.repeats):
    the suite extracts hundreds of small models, and its tests check the latency is measured, not its value
    (tests/compute/test_compression.py times footprint.measure itself)."""
    os.environ.setdefault("PRUNESCOPE_LATENCY_REPEATS", "1")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[variable] = str(threads)
        torch.set_num_threads(threads)


# The modules that take longest (75 s or more of a worker in a full run, measured with --durations=0), run
# first: pytest-xdist hands modules (--dist loadscope) to the workers in collection order, so a long module
# collected last keeps one worker busy while the other has nothing left to do.
RUN_FIRST = ("tests/compute/test_pruning.py", "tests/dashboard/test_hosting.py", "tests/dashboard/test_damaged_pages.py",
             "tests/compute/test_byo_zoo.py", "tests/compute/test_reliability.py", "tests/store/test_provenance.py",
             "tests/compute/test_sharding.py", "tests/dashboard/test_browser.py", "tests/system/test_own_models.py",
             "tests/dashboard/test_browser_layout.py", "tests/store/test_aggregates.py",
             "tests/system/test_imagefolder_study.py", "tests/store/test_store.py", "tests/compute/test_cli.py",
             "tests/compute/test_compression.py", "tests/system/test_demo.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """RUN_FIRST's modules first, longest first; every other module after them in its usual order (a stable
    sort: the tests of a module keep theirs)."""
    rank = {path: index for index, path in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(RUN_FIRST)))


def _key(value: object) -> object:
    """A hashable stand-in for one write_store argument (sequences become tuples)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(_key(item) for item in value)
    return value


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Callable[..., Path]:
    """`synthetic_store(num_models=.., num_samples=.., corruptions=.., ...)`: the one session store of that
    size, written on first use. Shared: read it, and copy it with `pristine_copy` before changing it."""
    built: dict[tuple, Path] = {}

    def store(**arguments) -> Path:
        key = tuple(sorted((name, _key(value)) for name, value in arguments.items()))
        if key not in built:
            built[key] = write_store(tmp_path_factory.mktemp("synthetic") / "store", **arguments)
        return built[key]

    return store


@pytest.fixture
def pristine_copy(tmp_path) -> Callable[..., Path]:
    """`pristine_copy(store, target=None)`: a copy of `store` (bytes, modes and times) at `target`, by default
    a fresh folder in this test's tmp_path; returns its path."""
    numbers = itertools.count()

    def copy(store: Path, target: Path | None = None) -> Path:
        target = target or tmp_path / f"copy{next(numbers)}" / store.name
        return Path(shutil.copytree(store, target, symlinks=True))

    return copy


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> list[Path]:
    """small0.pt and small1.pt: freshly initialised digits small_cnn checkpoints (testkit.extraction)."""
    return extraction.small_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@dataclass(frozen=True)
class Ran:
    """How one command ended and what it printed (named as subprocess.CompletedProcess names them)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def cli() -> Callable[..., Ran]:
    """`cli(*args)`: run `python -m compute *args` in this process, its output captured; argparse's exits
    become the return code. Session-scoped, so module fixtures can build their stores with it too. The
    process environment is restored after each run (`--allow-root` extends it, as in a real process)."""

    def run(*args: str | Path) -> Ran:
        out, err = io.StringIO(), io.StringIO()
        environment = dict(os.environ)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(arg) for arg in args])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            finally:
                os.environ.clear()
                os.environ.update(environment)
        return Ran(code, out.getvalue(), err.getvalue())

    return run


@dataclass(frozen=True)
class Sharded:
    """A store extracted as two shards, 1/2 then 0/2: each run, and whether the by-sample index was fresh
    after it."""

    store: Path
    runs: tuple[Ran, Ran]
    index_fresh: tuple[bool, bool]


@pytest.fixture(scope="session")
def two_shards(tmp_path_factory, checkpoints, cli) -> Sharded:
    """The tiny extraction setting (testkit.extraction.extract_args) of the first checkpoint as two shards:
    tests/compute/test_sharding.py checks how the runs end, tests/store/test_aggregates.py reads the store."""
    from store import sample_index

    store = tmp_path_factory.mktemp("shards") / "store"
    runs, fresh = [], []
    for shard in ("1/2", "0/2"):
        runs.append(cli(*extraction.extract_args(store, checkpoints[:1], "--shard", shard)))
        fresh.append(sample_index.is_fresh(store))
    return Sharded(store, (runs[0], runs[1]), (fresh[0], fresh[1]))


@pytest.fixture
def open_page(monkeypatch) -> Callable[..., AppTest]:
    """`open_page(store, page=None, **selection)`: the app on `store`, switched to `page` (a registered page's
    script, `dashboard.pages.PAGES[url_path].script`), the shared selection set as given, run without an exception."""

    def page(store: Path, page: str | None = None, **selection) -> AppTest:
        return open_app(monkeypatch, store, page, **selection)

    return page
