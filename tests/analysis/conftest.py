"""Fixtures of the analysis tests (tests/conftest.py has the shared ones).

Each module defines its own module-scoped `study` (testkit.study.write_study with the models, settings and
accuracies its claims need); `catalog` is the Catalog of that study.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from store.catalog import Catalog
from testkit.study import write_demo_shaped


@pytest.fixture(scope="module")
def catalog(study) -> Catalog:
    """The Catalog of the requesting module's `study`."""
    return Catalog(study)


@pytest.fixture(scope="session")
def demo_shaped(tmp_path_factory) -> Path:
    """A store shaped as the demo's (testkit.study.write_demo_shaped): its models and all 19 corruptions, at
    one severity (the report's width and words do not depend on how many)."""
    return write_demo_shaped(tmp_path_factory.mktemp("demo-shaped"), num_samples=100, severities=(3,))
