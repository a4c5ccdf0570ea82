"""Fixtures of the compute tests (tests/conftest.py has the shared ones).

- `digits`: the embedded digits dataset, loaded once per session; read it, never change its arrays.
- `stats`: digits' per-channel training mean and standard deviation (compute.train.channel_stats).
- `single_threaded()`: a context manager, torch on one thread inside its block (e.g. a fixture's training).
- `one_thread`: the same for a whole module (`pytestmark = pytest.mark.usefixtures("one_thread")`).
- `no_proxy_for_localhost`: modules that download from a local server use it
  (`pytestmark = pytest.mark.usefixtures("no_proxy_for_localhost")`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
import torch

from compute import datasets
from compute.datasets.base import Dataset
from compute.train import channel_stats


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return datasets.load("digits")


@pytest.fixture(scope="session")
def stats(digits) -> tuple[list[float], list[float]]:
    return channel_stats(digits.train.images)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def single_threaded() -> Callable[[], AbstractContextManager[None]]:
    """Small batches run faster on one thread on a shared machine (test_pruning's 8 digits epochs: 34 s on two
    threads, 11 s on one, load average 3). Only where the result does not depend on it: test_pruning's SNIP
    test recomputes gradients and needs the same thread count as the code it checks."""
    return _one_torch_thread


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    with _one_torch_thread():
        yield


@pytest.fixture
def no_proxy_for_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local server must be reached directly even where a proxy is configured."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
