"""Charts built once per selection (dashboard.figures): a chart function runs once per contents of its
frames and values, for every rerun and every session; the spec it gives draws and selects exactly as the
Altair chart does under st.altair_chart; and it is valid Vega-Lite (figures skips Altair's validation)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from analysis import calibration, queries
from dashboard import figures
from dashboard.charts import geometry, matrix, overview, predictors
from dashboard.charts.common import BINS
from dashboard.pages import PAGES
from store.catalog import Catalog
from testkit.app import open_app

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
POINTS = pl.DataFrame({"model_id": ["a", "b", "c"], "method": ["dense", "ltr", "gmp"],
                       "target_sparsity": [0.0, 0.5, 0.9], "angle": [50.0, 55.0, 60.0], "accuracy": [0.9, 0.8, 0.7]})


@pytest.fixture(autouse=True)
def no_cached_specs() -> None:
    figures._built.clear()


def counted(function: Callable, calls: list) -> Callable:
    """`function` (a chart of dashboard.charts, under its own name), recording each call in `calls`."""
    @functools.wraps(function)
    def chart(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)
    return chart


def test_a_chart_is_built_once_per_contents_of_its_frames_and_values() -> None:
    calls: list = []
    scatter = counted(predictors.predictor_scatter, calls)
    first = figures.spec(scatter, POINTS, "angle", "accuracy", "angle", "accuracy", "t")
    again = figures.spec(scatter, POINTS.clone(), "angle", "accuracy", "angle", "accuracy", "t")  # a new frame, alike
    assert again is first and len(calls) == 1
    figures.spec(scatter, POINTS.with_columns(pl.col("angle") + 1), "angle", "accuracy", "angle", "accuracy", "t")
    figures.spec(scatter, POINTS, "angle", "accuracy", "angle", "accuracy", "another title")
    figures.spec(scatter, POINTS.reverse(), "angle", "accuracy", "angle", "accuracy", "t")  # the row order counts
    assert len(calls) == 4


def test_only_charts_of_the_chart_modules_are_cached_and_only_by_values_with_contents() -> None:
    with pytest.raises(ValueError, match="not a chart of dashboard.charts"):
        figures.spec(lambda frame: frame, POINTS)
    with pytest.raises(TypeError, match="object has none"):
        figures.spec(predictors.predictor_scatter, POINTS, object(), "accuracy", "angle", "accuracy", "t")


def test_a_prebuilt_spec_draws_and_selects_like_the_altair_chart() -> None:
    def script() -> None:
        import polars as pl
        import streamlit as st

        from dashboard import figures, linking
        from dashboard.charts.overview import lineage_tree

        models = pl.DataFrame({"model_id": ["d", "p"], "arch": ["cnn"] * 2, "method": ["dense", "ltr"],
                               "target_sparsity": [0.0, 0.5], "sparsity": [0.0, 0.5], "seed": [0, 0],
                               "base": [None, "d"], "operation": [None, None]})
        st.altair_chart(lineage_tree(models, "p"), key="altair", on_select="rerun")
        linking.chart(figures.spec(lineage_tree, models, "p"), key="prebuilt")

    app = AppTest.from_function(script).run()
    assert not app.exception
    altair, prebuilt = (chart.proto for chart in app.get("vega_lite_chart"))
    assert json.loads(prebuilt.spec) == json.loads(altair.spec)
    assert [(d.name, d.data.data) for d in prebuilt.datasets] == [(d.name, d.data.data) for d in altair.datasets]
    assert list(prebuilt.selection_mode) == list(altair.selection_mode) == ["lineage"]  # clicks select


def test_a_page_builds_its_chart_once_for_reruns_and_sessions_with_the_same_selection(monkeypatch,
                                                                                        dashboard_store) -> None:
    calls: list = []
    monkeypatch.setattr(overview, "lineage_tree", counted(overview.lineage_tree, calls))
    app = open_app(monkeypatch, dashboard_store)  # two runs of the Overview
    app.run()
    open_app(monkeypatch, dashboard_store)  # another session
    assert len(calls) == 1
    other = next(m for m in app.sidebar.selectbox(key="model").options if m != app.session_state["model"])
    app.sidebar.selectbox(key="model").set_value(other).run()  # the tree outlines the selected model
    assert not app.exception and len(calls) == 2 and calls[1][1] == other
    lineage = next(c.proto for c in app.get("vega_lite_chart") if json.loads(c.proto.spec).get("title", "")
                   .startswith("Lineage"))
    assert list(lineage.selection_mode) == ["lineage"]


@pytest.mark.parametrize("blocks", [False, True])
def test_the_matrix_spec_outlines_the_selected_cell_as_the_chart_drawn_for_it_does(blocks) -> None:
    cells = POINTS.select("model_id", "method", "target_sparsity", pl.lit("fog").alias("corruption"),
                          pl.lit(3).alias("severity"), "accuracy")
    selected = {"model_id": "b", "corruption": "fog", "severity": 3}
    chart = matrix.evaluation_matrix(cells, "accuracy", "accuracy", ["fog s3"], selected=selected)
    shared = figures.spec(matrix.matrix_chart, cells, "accuracy", "accuracy", ["fog s3"], blocks=blocks)
    outlined = figures.with_selection(shared, "cell", matrix.selected_cell(cells, selected))
    assert outlined == figures.vega_lite(matrix.by_method(chart) if blocks else chart)
    assert "value" not in shared["params"][0]  # the shared spec is left as it was
    assert figures.with_selection(outlined, "cell", None) == shared
    with pytest.raises(ValueError, match="no selection parameter 'model'"):
        figures.with_selection(shared, "model", None)


def test_the_matrix_is_built_once_whichever_cell_is_selected(monkeypatch, dashboard_store) -> None:
    calls: list = []
    monkeypatch.setattr(matrix, "matrix_chart", counted(matrix.matrix_chart, calls))
    app = open_app(monkeypatch, dashboard_store, PAGES["matrix"].script, level="model")
    other = next(m for m in app.sidebar.selectbox(key="model").options if m != app.session_state["model"])
    app.sidebar.selectbox(key="model").set_value(other).run()  # a click on another row's cell does the same
    assert not app.exception and len(calls) == 1
    (chart,) = app.get("vega_lite_chart")
    (cell,) = json.loads(chart.proto.spec)["params"]
    assert cell["value"][0]["model_id"] == other and list(chart.proto.selection_mode) == ["cell"]


def test_no_module_of_the_app_converts_an_altair_chart_itself() -> None:
    """Altair's theme and data transformer are process-wide: figures switches them under its lock, and
    st.altair_chart under Streamlit's; an app calling both could draw a chart with the other's settings."""
    assert not [str(path.relative_to(DASHBOARD)) for path in DASHBOARD.rglob("*.py")
                if re.search(r"\baltair_chart\(", path.read_text())]


# -- validity: figures builds without Altair's schema validation ----------------------------------------

def validated(monkeypatch) -> list[str]:
    """Make figures validate every chart it builds against the Vega-Lite schema (to_dict raises on a spec
    the schema refuses); the kinds of the charts it built."""
    built: list[str] = []
    convert = figures.vega_lite

    def vega_lite(chart):
        chart.to_dict(validate=True)
        built.append(type(chart).__name__)
        return convert(chart)

    monkeypatch.setattr(figures, "vega_lite", vega_lite)
    return built


def test_every_chart_the_pages_draw_is_valid_vega_lite(monkeypatch, dashboard_store) -> None:
    """Every page with its default selection, plus the reliability diagram and the binned local geometry,
    which no default selection draws (the other charts' own tests validate the rest: density parallel
    coordinates, group accuracy, the blocks of a large matrix, attribution maps)."""
    built = validated(monkeypatch)
    app, drawn = open_app(monkeypatch, dashboard_store), 0
    for page in PAGES.values():
        app.switch_page(page.script).run()
        assert not app.exception, (page.url_path, app.exception)
        drawn += len(app.get("vega_lite_chart"))
    assert len(built) == drawn >= len(PAGES)  # every chart drawn was built, and validated, here
    catalog = Catalog(dashboard_store)
    model = queries.models(catalog)["model_id"][1]
    bins = calibration.calibration_bins(catalog, False, calibration.BINS, model, "clean", 0).with_columns(
        pl.lit(model).alias("curve"))
    figures.spec(matrix.reliability_diagram, bins, "t")
    figures.spec(geometry.class_density, queries.setting_bins(catalog, model, "clean", 0, BINS, None), x_title="x",
                 y_title="y", title="t")
    assert len(built) == drawn + 2
