"""analysis.calibration against a direct numpy computation on the raw Parquet files, the coverage of its
bootstrap interval in simulation, and the matrix page's calibration metric and reliability diagram."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import calibration
from dashboard.pages import PAGES
from store.catalog import Catalog
from testkit.direct import direct_rows
from testkit.study import write_study


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("calibration"), num_samples=80)


def direct_ece(confidence: np.ndarray, correct: np.ndarray, adaptive: bool) -> float:
    """ECE from its definition: sample-weighted |accuracy - mean confidence| over the bins."""
    order = np.argsort(confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    if adaptive:  # DuckDB's ntile: sizes differ by at most one, the larger bins first
        groups = np.array_split(np.arange(confidence.size), calibration.BINS)
    else:
        bins = np.minimum(np.floor(confidence * calibration.BINS), calibration.BINS - 1)
        groups = [np.flatnonzero(bins == b) for b in range(calibration.BINS)]
    return sum(abs(correct[g].mean() - confidence[g].mean()) * g.size for g in groups if g.size) / confidence.size


@pytest.mark.parametrize("adaptive", [False, True])
def test_ece_per_cell_matches_its_definition_on_the_parquet_files(study, adaptive) -> None:
    cells = calibration.calibration_cells(Catalog(study), adaptive)
    rows = direct_rows(study)
    assert cells.height == rows.select("model_id", "corruption", "severity").n_unique()
    for cell in cells.iter_rows(named=True):
        part = rows.filter((pl.col("model_id") == cell["model_id"]) & (pl.col("corruption") == cell["corruption"])
                           & (pl.col("severity") == cell["severity"]))
        confidence = part["confidence"].cast(pl.Float64).to_numpy()
        correct = part["correct"].cast(pl.Float64).to_numpy()
        # 1e-6: as tests/analysis/test_analytics.py, the direct rows derive confidence again from the stored logits
        assert cell["ece"] == pytest.approx(direct_ece(confidence, correct, adaptive), rel=1e-6, abs=1e-7)
        assert cell["accuracy"] == pytest.approx(correct.mean())
        assert cell["ece_low"] <= cell["ece_high"]


def simulated_bins(cells: int, samples: int, gap: float, seed: int) -> tuple[np.ndarray, ...]:
    """Per-bin statistics of `cells` models that are overconfident by `gap` everywhere (right with
    probability confidence - gap): their true equal-width ECE is exactly `gap`."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.5, 1.0, (cells, samples))
    right = rng.random((cells, samples)) < confidence - gap
    index = (np.arange(cells)[:, None] * calibration.BINS
             + np.minimum((confidence * calibration.BINS).astype(int), calibration.BINS - 1)).ravel()

    def per_bin(weights: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights.ravel(), cells * calibration.BINS).reshape(cells, calibration.BINS)

    return per_bin(np.ones_like(confidence)), per_bin(right.astype(float)), per_bin(confidence), per_bin(confidence**2)


def test_ece_interval_covers_the_true_ece_in_simulation() -> None:
    ece, low, high = calibration.ece_interval(*simulated_bins(800, 2000, 0.1, seed=13), resamples=300)
    assert ece.mean() == pytest.approx(0.1, abs=0.005)
    assert 0.93 <= np.mean((low <= 0.1) & (high >= 0.1)) <= 0.97


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_matrix_shows_calibration_and_the_selections_reliability_diagram(open_page, study) -> None:
    app = open_page(study, PAGES["matrix"].script)
    app.sidebar.segmented_control(key="level").set_value("model").run()
    app.sidebar.selectbox(key="metric").set_value("ece").run()
    assert not app.exception
    specs = [json.loads(c.proto.spec) for c in app.get("vega_lite_chart")]
    matrix = next(s for s in specs if s.get("encoding", {}).get("color", {}).get("field") == "ece")
    assert {"95% low", "95% high"} <= {t.get("title") for t in matrix["encoding"]["tooltip"]}
    (diagram,) = [s for s in specs if "Calibration" in str(s.get("title"))]
    assert diagram["layer"][0]["mark"]["strokeDash"] and any("overconfident" in c.value for c in app.caption)
    app.sidebar.selectbox(key="metric").set_value("adaptive_ece").run()
    assert not app.exception and any("equal-mass" in c.value for c in app.caption)
