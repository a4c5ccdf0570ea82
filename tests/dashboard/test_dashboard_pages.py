"""Each dashboard page under streamlit's AppTest on a synthetic store: it renders, and it follows the shared
selection; plus the chart functions on their own, without Streamlit."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from analysis import matrices, queries
from compute import attribution
from dashboard.charts.common import model_labels
from dashboard.charts.geometry import parallel_density, parallel_lines
from dashboard.charts.matrix import evaluation_matrix
from dashboard.charts.overview import accuracy_vs_sparsity
from dashboard.charts.sample import attribution_maps
from dashboard.metrics import METRICS
from dashboard.pages import PAGES
from store import vocabulary
from store.catalog import Catalog
from testkit.app import (
    APP,
    ATTRIBUTED,
    CORRUPTIONS,
    open_app,
    specs,
    write_embeddings,
)


@pytest.fixture(scope="module")
def store(dashboard_store) -> Path:
    return dashboard_store


def text(app: AppTest) -> str:
    """All markdown and captions on the page, for checking what it says."""
    return "\n".join([m.value for m in app.markdown] + [c.value for c in app.caption])


# -- pages ---------------------------------------------------------------------------------------------

def test_the_page_registry_lists_every_view_script_once_with_the_store_views_it_reads() -> None:
    scripts = {f"views/{path.name}" for path in (Path(APP).parent / "views").glob("*.py")}
    assert sorted(page.script for page in PAGES.values()) == sorted(scripts)
    assert all(path == page.url_path for path, page in PAGES.items())
    assert len({page.title for page in PAGES.values()}) == len(PAGES)
    assert all(page.reads and set(page.reads) <= set(vocabulary.VIEWS) for page in PAGES.values())


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_every_registered_page_is_served_under_its_title(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store)
    assert app.title[0].value == next(iter(PAGES.values())).title  # the root URL opens the first page
    for page in PAGES.values():
        app.switch_page(page.script).run()
        assert not app.exception, (page.url_path, app.exception)
        assert [title.value for title in app.title] == [page.title], page.url_path


def test_overview_shows_the_study(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store)
    assert app.title[0].value == "Overview"
    assert [m.label for m in app.metric] == ["models", "methods", "best clean accuracy", "best corruption accuracy"]
    assert app.metric[0].value == "4"
    assert len(app.get("vega_lite_chart")) == 3  # accuracy vs sparsity, robustness vs cost, the lineage tree
    assert app.dataframe[0].value.shape[0] == 4
    assert {"CSV", "Parquet"} <= {button.label for button in app.get("download_button")}


def test_the_matrix_draws_every_registered_metric_from_its_column_with_its_legend(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGES["matrix"].script, level="model")
    for name, metric in METRICS.items():
        app.sidebar.selectbox(key="metric").set_value(name).run()
        assert not app.exception, (name, app.exception)
        spec = specs(app)[0]  # the matrix; calibration metrics add a reliability diagram below it
        assert (spec["encoding"]["color"]["field"], spec["encoding"]["color"]["title"]) == (metric.value,
                                                                                         metric.label), name


def test_matrix_follows_the_metric_and_severity_and_outlines_the_selected_cell(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGES["matrix"].script, model="m02-gmp-50", corruption="contrast", severity=3)
    assert app.title[0].value == "Evaluation matrix"
    (spec,) = specs(app)
    assert spec["encoding"]["x"]["sort"] == ["clean", "gaussian_noise s1", "gaussian_noise s3", "contrast s1",
                                             "contrast s3"]
    assert spec["params"][0]["value"] == [{"model_id": "m02-gmp-50", "corruption": "contrast", "severity": 3}]
    assert "m02-gmp-50" in text(app) and "contrast, severity 3" in text(app)

    app.sidebar.selectbox(key="metric").set_value("drop_vs_reference").run()
    app.select_slider(key="matrix_severity").set_value(3).run()
    assert not app.exception
    (spec,) = specs(app)
    assert spec["encoding"]["color"]["field"] == "drop_vs_reference"
    assert spec["encoding"]["color"]["scale"]["domainMid"] == 0.0
    assert spec["encoding"]["x"]["sort"] == ["clean", "gaussian_noise s3", "contrast s3"]

    app.sidebar.selectbox(key="metric").set_value("relative_ce").run()
    (spec,) = specs(app)
    assert spec["encoding"]["x"]["sort"] == list(CORRUPTIONS)
    left_out = matrices.corruption_errors(Catalog(store)).filter(pl.col("relative_ce_note").is_not_null())
    blank = [c.value for c in app.caption if c.value.startswith("Blank ")]
    assert len(blank) == left_out["corruption"].n_unique() and all("nearly 0" in c for c in blank)


def test_similarity_draws_the_model_map_and_both_heat_maps_for_the_selected_setting(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGES["similarity"].script, corruption="gaussian_noise", severity=1)
    titles = [spec["title"] if isinstance(spec["title"], str) else spec["title"]["text"] for spec in specs(app)]
    assert len(titles) == 3
    assert "gaussian_noise, severity 1" in titles[1]
    assert "severity 1" in titles[2]
    app.toggle(key="redundancy_per_sample").set_value(True).run()
    assert not app.exception
    assert specs(app)[2]["encoding"]["color"]["title"] == "Cohen's kappa"


def test_similarity_explains_a_missing_embedding(monkeypatch, synthetic_store) -> None:
    bare = synthetic_store(num_models=3, num_samples=20, corruptions=CORRUPTIONS, severities=(1,))
    app = open_app(monkeypatch, bare, PAGES["similarity"].script)
    assert "python -m compute embed" in app.info[0].value
    assert len(app.get("vega_lite_chart")) == 2  # the heat maps need no embedding


def test_local_geometry_shows_the_selection_and_the_deltas_to_the_comparison(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGES["local"].script, model="m02-gmp-50", compare="m00-dense-0",
                   corruption="contrast", severity=3)
    assert "m02-gmp-50" in text(app) and "contrast, severity 3" in text(app)
    scatter, deltas = specs(app)
    assert scatter["facet"]["field"] == "label_name"
    assert scatter["spec"]["encoding"]["x"]["field"] == "angle_true"
    assert deltas["spec"]["encoding"]["x"]["field"] == "delta_angle_true"
    assert deltas["spec"]["encoding"]["color"]["field"] == "change"

    app.sidebar.selectbox(key="compare").set_value("").run()
    assert len(specs(app)) == 1
    assert "Compare with" in app.info[0].value


def test_local_geometry_bins_in_duckdb_above_the_mark_limit(monkeypatch, store) -> None:
    monkeypatch.setattr("dashboard.charts.common.MAX_MARKS", 10)
    app = open_app(monkeypatch, store, PAGES["local"].script, model="m01-ft-50", compare="m00-dense-0")
    scatter, deltas = specs(app)
    assert scatter["spec"]["mark"]["type"] == "rect"
    assert scatter["spec"]["encoding"]["color"]["field"] == "samples"
    assert deltas["spec"]["encoding"]["x"]["field"] == "x_low"


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_global_geometry_switches_between_lines_and_density(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGES["global"].script, model="m03-ltr-50")
    (spec,) = specs(app)
    assert "m03-ltr-50" in spec["title"]
    assert spec["layer"][0]["mark"]["type"] == "line"
    assert spec["layer"][0]["encoding"]["color"]["field"] == "correct"
    app.segmented_control(key="global_mode").set_value("density").run()
    assert not app.exception
    (spec,) = specs(app)
    assert spec["layer"][0]["mark"]["type"] == "rule"
    app.selectbox(key="global_class").set_value("class3").run()
    assert not app.exception


def test_many_classes_get_a_class_picker_and_the_closest_wrong_classes_as_axes(monkeypatch, synthetic_store) -> None:
    many = synthetic_store(num_models=2, num_samples=60, corruptions=CORRUPTIONS, severities=(1,), num_classes=30)
    app = open_app(monkeypatch, many, PAGES["global"].script, model="m01-ft-50")
    (spec,) = specs(app)
    label_expression = spec["layer"][1]["layer"][0]["encoding"]["x"]["axis"]["labelExpr"]
    assert "'wrong class #5 angle (°)'" in label_expression and "angle to class0" not in label_expression
    app.switch_page(PAGES["local"].script).run()
    assert not app.exception, app.exception
    sizes = queries.samples(Catalog(many))["label"].value_counts().sort(["count", "label"], descending=[True, False])
    assert app.multiselect(key="classes").value == [f"class{c}" for c in sizes["label"].head(10)]  # the largest
    app.multiselect(key="classes").set_value(["class3", "class17"]).run()
    assert not app.exception, app.exception
    assert len(specs(app)) == 2  # the scatter and the deltas to the dense model
    points = queries.setting_points(Catalog(many), "m01-ft-50", "clean", 0, [3, 17])
    assert set(points["label"]) <= {3, 17} and points.height > 0


def test_samples_presets_list_samples_and_a_bad_filter_is_an_inline_error(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGES["samples"].script, corruption="gaussian_noise", severity=3)
    assert app.title[0].value == "Samples"
    for preset in ("pruning_fragile", "corruption_fragile", "robust", "flipped_by_pruning"):
        app.selectbox(key="samples_preset").set_value(preset).run()
        assert not app.exception, preset
        assert not app.error, preset
    app.segmented_control(key="samples_source").set_value("filter").run()
    app.text_input(key="samples_filter").set_value("angle_true >").run()
    assert not app.exception
    assert app.error and "filter" in app.error[0].value.lower()
    app.text_input(key="samples_filter").set_value("not correct").run()
    assert not app.error
    assert "matching rows" in text(app)
    assert set(app.dataframe[0].value["model_id"]) == {"m01-ft-50"}  # scoped to the sidebar's model
    app.text_input(key="samples_filter").set_value("label_name = 3").run()  # text compared with a number
    assert not app.exception
    assert app.error


def test_a_whole_study_filter_whose_count_passes_the_time_limit_still_lists_its_first_rows(
        monkeypatch, synthetic_store) -> None:
    from analysis import presets
    from store.catalog import QueryTimeout

    # more matching rows than the page fetches (LIMIT 1000 in views/samples.py), so it must count them
    big = synthetic_store(num_models=4, num_samples=300, corruptions=("fog",), severities=(1,))

    @functools.wraps(presets.count_rows)
    def too_slow(*args, **kwargs):
        raise QueryTimeout("query stopped after 5.0 s; narrow the filter")

    monkeypatch.setattr(presets, "count_rows", too_slow)
    app = open_app(monkeypatch, big, PAGES["samples"].script)
    app.segmented_control(key="samples_source").set_value("filter").run()
    app.checkbox(key="samples_scoped").uncheck().run()
    app.text_input(key="samples_filter").set_value("margin < 2.9 or margin >= 2.9").run()
    assert not app.exception and not app.error
    assert "At least **1,000** (counting them all stopped at its time limit" in text(app)
    assert len(app.dataframe[0].value) > 0


def test_sample_page_follows_the_query_parameter_and_the_selection(monkeypatch, store) -> None:
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store))
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["sample"] = "7"
    app.switch_page(PAGES["sample"].script).run()
    assert not app.exception, app.exception
    label = queries.samples(Catalog(store))["label_name"][7]
    assert app.number_input(key="sample").value == 7
    assert f"Class **`{label}`**" in text(app)  # store text shown as inline code, never as Markdown
    (spec,) = specs(app)
    assert len(spec["layer"]) == 2  # the heat map and the crosses on wrong predictions
    app.session_state["sample"] = 12
    app.run()
    assert app.number_input(key="sample").value == 12
    assert len(app.get("image")) == 1
    app.toggle(key="corruption_grid").set_value(True).run()
    assert not app.exception, app.exception
    (grid,) = app.get("image")[1:]
    assert len(grid.proto.imgs) == 1 + len(CORRUPTIONS) * 2  # clean, and two severities per corruption


def test_sample_page_explains_a_missing_checkpoint_and_computes_attribution_from_a_real_one(monkeypatch,
                                                                                             store) -> None:
    app = open_app(monkeypatch, store, PAGES["sample"].script, model="m02-gmp-50")
    assert "no checkpoint" in app.info[0].value
    app.sidebar.selectbox(key="model").set_value(ATTRIBUTED).run()
    app.toggle(key="attribution").set_value(True).run()
    assert not app.exception, app.exception
    attribution = [spec for spec in specs(app) if "hconcat" in spec]
    assert len(attribution) == 1 and len(attribution[0]["hconcat"]) == 3


def test_embedding_colours_by_class_correctness_or_model(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGES["embedding"].script, model="m01-ft-50")
    (spec,) = specs(app)
    assert spec["encoding"]["color"]["field"] == "label_name"
    app.segmented_control(key="embedding_colour").set_value("model").run()
    (spec,) = specs(app)
    assert spec["encoding"]["color"]["field"] == "model_id"
    app.sidebar.selectbox(key="corruption").set_value("gaussian_noise").run()
    assert "other settings" in app.info[0].value


@pytest.mark.parametrize("page", [None, PAGES["matrix"].script, PAGES["sample"].script])
def test_pages_explain_a_missing_store(monkeypatch, tmp_path, page) -> None:
    app = open_app(monkeypatch, tmp_path / "absent", page)
    assert "No store at" in app.warning[0].value


def test_changing_the_store_in_the_sidebar_switches_the_page(monkeypatch, store, tmp_path) -> None:
    monkeypatch.setenv("PRUNESCOPE_ALLOW_ANY_STORE", "1")  # the path box exists only for local use
    app = open_app(monkeypatch, store)
    assert app.metric
    app.sidebar.text_input[0].set_value(str(tmp_path)).run()
    assert not app.exception
    assert "is not a prunescope store" in app.error[0].value
    assert not app.metric


def test_a_clicked_mark_becomes_the_shared_selection() -> None:
    def script() -> None:
        import streamlit as st

        from dashboard import linking

        st.session_state.setdefault("corruption", "fog")
        st.session_state.setdefault("severity", 5)
        if "point" in st.session_state:
            linking.apply_point(st.session_state["point"])

    app = AppTest.from_function(script).run()
    app.session_state["point"] = {"model_id": "m01", "corruption": "contrast", "severity": 3, "sample_id": 4.0}
    app.run()
    assert (app.session_state["model"], app.session_state["corruption"], app.session_state["severity"],
            app.session_state["sample"]) == ("m01", "contrast", 3, 4)
    app.session_state["point"] = {"model_id": "m02", "model_b": "m00", "corruption": "clean", "severity": 0}
    app.run()
    assert (app.session_state["model"], app.session_state["compare"], app.session_state["corruption"],
            app.session_state["severity"]) == ("m02", "m00", "clean", 3)  # clean keeps the severity slider


# -- charts and attribution without Streamlit ------------------------------------------------------------

def test_matrix_orders_rows_by_method_then_sparsity_and_columns_like_the_benchmark(store) -> None:
    cells = pl.DataFrame({
        "model_id": ["b90", "a50", "d", "b50"], "method": ["lrr", "ft", "dense", "lrr"],
        "target_sparsity": [0.9, 0.5, 0.0, 0.5], "corruption": ["fog", "clean", "fog", "fog"],
        "severity": [3, 0, 3, 3], "accuracy": [0.5, 0.9, 0.95, 0.7]})
    spec = evaluation_matrix(cells, "accuracy", "accuracy", ["clean", "fog s3"], domain=(0, 1)).to_dict()
    assert spec["encoding"]["y"]["sort"] == ["dense", "ft 50%", "lrr 50%", "lrr 90%"]
    assert spec["encoding"]["x"]["sort"] == ["clean", "fog s3"]
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 1]


def test_accuracy_lines_start_at_the_dense_model() -> None:
    summary = pl.DataFrame({"model_id": ["d", "f50", "f90", "g90"], "method": ["dense", "ft", "ft", "gmp"],
                            "sparsity": [0.0, 0.5, 0.9, 0.9], "clean_accuracy": [0.99, 0.98, 0.95, 0.9],
                            "corruption_accuracy": [0.8, 0.78, 0.7, 0.6]})
    spec = accuracy_vs_sparsity(summary).to_dict()
    lines = pl.DataFrame(spec["datasets"][spec["layer"][0]["data"]["name"]])
    assert lines.filter(pl.col("model_id") == "d")["method"].sort().to_list() == ["dense", "dense", "ft", "ft",
                                                                                   "gmp", "gmp"]
    points = spec["datasets"][spec["layer"][1]["data"]["name"]]
    assert len(points) == 4 * 2  # one point per model and kind of image


def test_model_labels_add_the_id_only_where_two_models_would_read_alike() -> None:
    frame = pl.DataFrame({"model_id": ["d", "f-s0", "f-s1", "g"], "method": ["dense", "ft", "ft", "gmp"],
                          "target_sparsity": [0.0, 0.9, 0.9, 0.5]})
    assert model_labels(frame).to_list() == ["dense", "ft 90% · f-s0", "ft 90% · f-s1", "gmp 50%"]


def test_parallel_coordinates_name_every_axis_and_scale_angles_together(store) -> None:
    catalog = Catalog(store)
    axes = queries.parallel_axes(catalog)
    lines = queries.parallel_lines(catalog, "m01-ft-50", "clean", 0, lines=7)
    assert lines["sample_id"].n_unique() == 7
    assert lines.height == 7 * len(axes) == 7 * (10 + 3)
    angles = lines.filter(pl.col("axis_index") < 10)
    assert angles["low"].n_unique() == 1 and angles["high"].n_unique() == 1  # one degree scale
    assert lines["scaled"].min() >= 0 and lines["scaled"].max() <= 1
    spec = parallel_lines(lines, axes, "t").to_dict()
    label_expression = spec["layer"][1]["layer"][0]["encoding"]["x"]["axis"]["labelExpr"]
    assert "'angle to class9 (°)'" in label_expression and "'loss (nats)'" in label_expression

    top = queries.parallel_lines(catalog, "m01-ft-50", "clean", 0, top_k=3, lines=5)
    assert queries.parallel_axes(catalog, 3)[1] == "wrong class #1 angle (°)"
    assert top.height == 5 * (1 + 3 + 3)
    nearest = top.filter(pl.col("axis_index").is_in([1, 2, 3])).sort("sample_id", "axis_index")
    assert all(group["value"].is_sorted() for _, group in nearest.group_by("sample_id"))


def test_density_parallel_coordinates_count_every_sample_once_per_axis_pair(store) -> None:
    catalog = Catalog(store)
    density = queries.parallel_density(catalog, "m01-ft-50", "contrast", 3, bins=8)
    per_pair = density.group_by("axis_index").agg(pl.col("samples").sum())
    assert per_pair["samples"].unique().to_list() == [40]
    spec = parallel_density(density, queries.parallel_axes(catalog), "t").to_dict()
    assert spec["layer"][0]["encoding"]["x2"]["field"] == "next_index"


def test_binned_geometry_keeps_every_sample(store) -> None:
    catalog = Catalog(store)
    bins = queries.setting_bins(catalog, "m01-ft-50", "clean", 0, bins=5)
    assert bins["samples"].sum() == 40
    assert (bins["x_high"] > bins["x_low"]).all()
    deltas = queries.pair_delta_bins(catalog, "m00-dense-0", "m01-ft-50", "clean", 0, bins=5, labels=[0, 1])
    assert deltas["samples"].sum() == queries.pair_deltas(catalog, "m00-dense-0", "m01-ft-50", "clean", 0,
                                                          labels=[0, 1]).height


def test_attribution_maps_draw_one_panel_per_metric() -> None:
    """The chart of compute.attribution's maps (the maps themselves: tests/compute/test_attribution.py)."""
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    maps = {metric: np.random.default_rng(1).normal(size=image.shape[:2]) for metric in attribution.METRICS}
    spec = attribution_maps(image, maps, attribution.UNITS).to_dict()
    assert len(spec["hconcat"]) == 3


@pytest.mark.slow  # large AppTest: every page on 1000 classes
def test_every_page_renders_on_a_1000_class_store_of_format_2(monkeypatch, synthetic_store, pristine_copy) -> None:
    """Rows keep the top-10 classes and the true class; every page still renders and names classes."""
    large = pristine_copy(synthetic_store(num_models=2, num_samples=60, corruptions=CORRUPTIONS, severities=(1,),
                                          num_classes=1000))
    write_embeddings(large)
    assert not Catalog(large).keeps_all_classes
    for page in PAGES.values():
        app = open_app(monkeypatch, large, page.script, model="m01-ft-50")
        assert not app.error, (page.url_path, [e.value for e in app.error])
    app = open_app(monkeypatch, large, PAGES["global"].script, model="m01-ft-50")
    (spec,) = specs(app)
    label_expression = spec["layer"][1]["layer"][0]["encoding"]["x"]["axis"]["labelExpr"]
    assert "'wrong class #5 angle (°)'" in label_expression
    app.selectbox(key="global_class").set_value("class17").run()
    assert not app.exception, app.exception
    values = queries.class_values(Catalog(large), "m01-ft-50", "clean", 0)
    assert set(values["classes"].list.len().unique()) <= {10, 11}
