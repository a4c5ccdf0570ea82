"""Fixtures of the system tests (tests/conftest.py has the shared ones).

- `latency_not_timed`: a stand-in for compute.footprint.latency, for end-to-end set-ups that extract many
  models and read no latency (timing takes 64 single images and a batch of 256 per model: at 224 px, or for a
  ResNet, most of an extraction). A set-up patches it in with pytest.MonkeyPatch while it extracts; the real
  timing is tested in tests/compute/test_compression.py, and tests/system/test_own_models.py times one model.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


def _not_timed(model, image_size: int, batch_size: int, repeats: int = 5, budget_s: float = 0.0) -> float:
    """compute.footprint.latency's signature; one millisecond per image, measured on nothing."""
    return 0.001


@pytest.fixture(scope="session")
def latency_not_timed() -> Callable[..., float]:
    return _not_timed
