"""Fixtures of the dashboard tests (tests/conftest.py has the shared ones).

- `dashboard_store`: testkit.app.dashboard_store (embeddings and one real checkpoint), built once per session;
  the dashboard only reads it, so the AppTest and the browser modules share it.
- `hosted_store(models, target)`: a copy at `target` of the session's small synthetic store of `models`
  models (12 samples, testkit.app.CORRUPTIONS at severity 1), for ROOTs of several served stores.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit import app


@pytest.fixture(scope="session")
def dashboard_store(tmp_path_factory) -> Path:
    return app.dashboard_store(tmp_path_factory.mktemp("dashboard") / "store")


@pytest.fixture(scope="session")
def hosted_store(synthetic_store) -> Callable[[int, Path], Path]:
    def copy(models: int, target: Path) -> Path:
        store = synthetic_store(num_models=models, num_samples=12, corruptions=app.CORRUPTIONS, severities=(1,))
        return Path(shutil.copytree(store, target, symlinks=True))

    return copy
