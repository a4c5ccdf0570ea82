"""The metrics the evaluation matrix can show, listed once: the sidebar's picker offers them and the matrix
page draws the picked one from its entry (the query that computes its cells, the column each cell shows, the
colour scale). Adding a metric is one entry here; the geometric ones take their meaning from
analysis.matrices.CELL_METRICS, where the values are defined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from analysis import calibration, matrices, uncertainty


@dataclass(frozen=True)
class Metric:
    """One metric of the evaluation matrix."""

    label: str  # the picker's option and the matrix's legend
    meaning: str  # what a cell's value is, for the picker's help
    query: Callable[..., pl.DataFrame]  # a named query of analysis, called (catalog, *arguments)
    value: str  # the column of the query's result that colours each cell
    arguments: tuple[Any, ...] = ()
    intervals: bool = False  # cells carry 95 % intervals and a drop-vs-reference test; the query takes the row level
    domain: tuple[float, float] | None = None  # a sequential colour scale over this range (None: the data's)
    diverging_at: float | None = None  # instead, a diverging scale centred here, red above (higher is worse)
    per_corruption: bool = False  # one value per corruption (over its severities), not per setting
    note: str = ""  # a caption the matrix shows while this metric is picked


def _geometry(name: str, label: str) -> Metric:
    """The mean of a per-sample column of CELL_METRICS per cell, over single models."""
    return Metric(label, f"mean {matrices.CELL_METRICS[name]}", matrices.metric_matrix, "value", (name,))


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", matrices.CELL_METRICS["accuracy"], uncertainty.matrix_cells, "accuracy",
                       intervals=True, domain=(0, 1)),
    "drop_vs_reference": Metric("accuracy drop vs reference", "the reference's accuracy minus the model's, on "
                                "the samples both have", uncertainty.matrix_cells, "drop_vs_reference",
                                intervals=True, diverging_at=0.0),
    "relative_ce": Metric(
        "relative corruption error", "the error increase over clean images, summed over severities, relative "
        "to the reference's", matrices.corruption_errors, "relative_ce", diverging_at=1.0, per_corruption=True,
        note="Relative corruption error: the model's error increase over its clean error, summed over "
             "severities, divided by its reference's (1 = as robust as the reference, above 1 = more brittle). "
             "One value per corruption, so the severity control does not apply. A corruption that barely hurts "
             "the reference (its error rises by less than "
             f"{matrices.MIN_REFERENCE_RISE}) is left blank: the ratio would divide by nearly 0."),
    "ece": Metric("expected calibration error", "how far confidence is from accuracy: the sample-weighted mean "
                  f"gap over {calibration.BINS} equal-width confidence bins", calibration.calibration_cells, "ece",
                  note="Expected calibration error (Guo et al. 2017): 0 = confidence matches accuracy. The tooltip "
                       "gives its 95 % bootstrap interval; the reliability diagram below shows the selection's bins."),
    "adaptive_ece": Metric("adaptive calibration error", "the same gap over equal-mass confidence bins",
                           calibration.calibration_cells, "ece", (True,),
                           note="Adaptive ECE (Nixon et al. 2019): bins of equal sample count, less sensitive to "
                                "the many samples a confident model puts in its top bin."),
    "angle_true": _geometry("angle_true", "mean angle to the true class (°)"),
    "feature_norm": _geometry("feature_norm", "mean feature norm"),
    "margin": _geometry("margin", "mean margin"),
    "loss": _geometry("loss", "mean cross-entropy loss"),
}
