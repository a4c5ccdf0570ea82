"""Fixtures of the analysis tests (tests/conftest.py has the shared ones).

Each module defines its own module-scoped `study` (testkit.study.write_study with the models, settings and
accuracies its claims need); `catalog` is the Catalog of that study.
"""

from __future__ import annotations

import pytest

from store.catalog import Catalog


@pytest.fixture(scope="module")
def catalog(study) -> Catalog:
    """The Catalog of the requesting module's `study`."""
    return Catalog(study)
