"""Fixtures of the compute tests (tests/conftest.py has the shared ones).

- `digits`: the embedded digits dataset, loaded once per session; read it, never change its arrays.
- `stats`: digits' per-channel training mean and standard deviation (compute.train.channel_stats).
- `no_proxy_for_localhost`: modules that download from a local server use it
  (`pytestmark = pytest.mark.usefixtures("no_proxy_for_localhost")`).
"""

from __future__ import annotations

import pytest

from compute import datasets
from compute.datasets.base import Dataset
from compute.train import channel_stats


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return datasets.load("digits")


@pytest.fixture(scope="session")
def stats(digits) -> tuple[list[float], list[float]]:
    return channel_stats(digits.train.images)


@pytest.fixture
def no_proxy_for_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local server must be reached directly even where a proxy is configured."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
