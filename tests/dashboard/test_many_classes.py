"""Every dashboard page on studies of 200 and 1,000 classes (AppTest): it renders, names classes by their
names (never bare indices), and offers a searchable class picker where one panel per class would be too
many; and the evaluation matrix at 100 models keeps every row's label."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from analysis import queries
from dashboard import classes
from dashboard.charts.common import OTHER_CLASSES, model_labels
from dashboard.charts.matrix import by_method, evaluation_matrix
from dashboard.pages import PAGES
from dashboard.text import code
from store.catalog import Catalog
from testkit.app import specs, write_embeddings
from testkit.synthetic import METHODS as SYNTHETIC_METHODS

MODEL = "m01-ft-50"


def class_names(count: int) -> list[str]:
    """Names that cannot be mistaken for indices (as a real study's: 'tench', 'n01440764 goldfish', ...)."""
    return [f"taxon {chr(97 + c % 26)}{c:04d}" for c in range(count)]


@pytest.fixture(scope="module", params=[200, pytest.param(1000, marks=pytest.mark.slow)])  # 1000: large AppTest
def study(request, tmp_path_factory, synthetic_store) -> tuple[Path, list[str]]:
    """A tiny study of `param` classes: 2 models, 60 samples, clean and one corruption at one severity."""
    names = class_names(request.param)
    store = synthetic_store(num_models=2, num_samples=60, corruptions=("fog",), severities=(1,),
                            num_classes=request.param, class_names=names)
    root = Path(shutil.copytree(store, tmp_path_factory.mktemp(f"classes{request.param}") / "store", symlinks=True))
    write_embeddings(root)
    return root, names


def chart_data(app: AppTest, index: int = 0) -> pl.DataFrame:
    """The data of the page's `index`-th chart, as Streamlit sent it to the browser."""
    chart = app.get("vega_lite_chart")[index]
    return pl.from_arrow(pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all())


def no_error(app: AppTest) -> None:
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]


@pytest.mark.parametrize("page", [page.script for page in PAGES.values() if page.section == "Study"])
def test_study_pages_render(open_page, study, page) -> None:
    root, _ = study
    no_error(open_page(root, page, model=MODEL))


def test_local_geometry_shows_a_searchable_picker_of_the_largest_classes_by_name(open_page, study) -> None:
    root, names = study
    app = open_page(root, PAGES["local"].script, model=MODEL)
    no_error(app)
    picker = app.multiselect(key="classes")
    assert picker.options == names  # every class, by name, searchable
    sizes = queries.samples(Catalog(root))["label"].value_counts().sort(["count", "label"], descending=[True, False])
    assert picker.value == [names[c] for c in sizes["label"].head(classes.FIRST_CLASSES)]
    (scatter, deltas) = specs(app)
    assert scatter["facet"]["field"] == "label_name"
    assert set(chart_data(app)["label_name"]) == set(picker.value)  # one panel per picked class, by name
    smallest = [names[c] for c in sizes["label"].tail(2)]  # outside the first ten, found by name
    picker.set_value(smallest).run()
    no_error(app)
    assert set(chart_data(app)["label_name"]) == set(smallest)
    picker.set_value([]).run()
    no_error(app)
    assert not app.get("vega_lite_chart") and "Pick at least one class" in app.info[0].value


def test_global_geometry_names_the_true_and_nearest_classes(open_page, study) -> None:
    root, names = study
    app = open_page(root, PAGES["global"].script, model=MODEL)
    no_error(app)
    (spec,) = specs(app)
    tooltips = [t["field"] for t in spec["layer"][0]["encoding"]["tooltip"]]
    assert "label_name" in tooltips and "axis_class_name" in tooltips
    lines = chart_data(app)
    angle_axes = lines.filter(pl.col("axis_class_name").is_not_null())
    assert angle_axes.height and set(angle_axes["axis_class_name"]) <= set(names)
    true_axis = lines.filter(pl.col("axis_index") == 0)
    assert (true_axis["axis_class_name"] == true_axis["label_name"]).all()  # the first axis: the true class
    app.number_input(key="global_top_k").set_value(3).run()
    no_error(app)
    assert chart_data(app)["axis_index"].max() == 1 + 3 + 2  # true class, 3 nearest, norm, margin, loss
    app.selectbox(key="global_class").set_value(names[-1]).run()
    no_error(app)


def test_samples_tables_name_the_true_and_predicted_classes(open_page, study) -> None:
    root, names = study
    app = open_page(root, PAGES["samples"].script, model=MODEL, samples_source="filter",
                   samples_filter="not correct", samples_scoped=True)
    no_error(app)
    table = app.dataframe[0].value
    assert {"label_name", "pred_name"} <= set(table.columns)
    assert [names[c] for c in table["pred"]] == table["pred_name"].tolist()
    assert [names[c] for c in table["label"]] == table["label_name"].tolist()


def test_sample_page_names_its_class(open_page, study) -> None:
    root, names = study
    label = int(queries.samples(Catalog(root))["label"][5])
    app = open_page(root, PAGES["sample"].script, model=MODEL, sample=5)
    no_error(app)
    assert code(names[label]) in "\n".join(m.value for m in app.markdown)
    cells = chart_data(app)
    assert set(cells["label_name"]) == {names[label]} and set(cells["pred_name"]) <= set(names)


def test_embedding_colours_the_picked_classes_and_greys_the_rest(open_page, study) -> None:
    root, names = study
    app = open_page(root, PAGES["embedding"].script, model=MODEL, classes=[names[0], names[3]])
    no_error(app)
    (spec,) = specs(app)
    colour = spec["encoding"]["color"]
    assert colour["field"] == "class" and colour["scale"]["domain"][-1] == OTHER_CLASSES
    points = chart_data(app)
    assert set(points["class"]) <= {names[0], names[3], OTHER_CLASSES}
    greys = (points["class"] == OTHER_CLASSES).to_list()
    assert greys == sorted(greys, reverse=True)  # grey points first, so the picked classes are drawn on top
    assert set(points["label_name"]) <= set(names)


@pytest.mark.slow  # large AppTest: a 100-model matrix per metric
def test_matrix_of_100_models_groups_rows_by_method_and_keeps_every_row_label(open_page, synthetic_store) -> None:
    root = synthetic_store(num_models=100, num_samples=12, corruptions=("fog",), severities=(1,))
    labels = set(model_labels(queries.models(Catalog(root))))
    assert len(labels) == 100
    for metric in ("accuracy", "margin"):
        app = open_page(root, PAGES["matrix"].script, level="model", metric=metric)
        no_error(app)
        (spec,) = specs(app)
        blocks = spec["vconcat"]  # one block of rows per method, titled by it, dense first
        assert [b["title"]["text"] for b in blocks] == ["dense", *sorted(set(SYNTHETIC_METHODS) - {"dense"})]
        assert spec["resolve"]["scale"]["y"] == "independent"  # each block only its own rows
        assert all(set(b["encoding"]["y"]["sort"]) == labels for b in blocks)  # every row's label in the chart
        assert set(chart_data(app)["model"]) == labels
        assert {p["name"] for p in spec["params"]} == {"cell"}  # one click selection over every block
        assert "scroll" in "\n".join(c.value for c in app.caption)
    few = synthetic_store(num_models=6, num_samples=12, corruptions=("fog",), severities=(1,))
    (spec,) = specs(open_page(few, PAGES["matrix"].script, level="model"))
    assert "vconcat" not in spec and len(spec["encoding"]["y"]["sort"]) == 6


def test_matrix_chart_splits_by_method_in_the_order_of_its_rows() -> None:
    cells = pl.DataFrame({"model_id": ["d", "a", "b"], "method": ["dense", "snip", "gmp"],
                          "target_sparsity": [0.0, 0.5, 0.5], "corruption": ["clean"] * 3, "severity": [0] * 3,
                          "accuracy": [0.9, 0.8, 0.7]})
    spec = by_method(evaluation_matrix(cells, "accuracy", "accuracy", ["clean"])).to_dict()
    assert [b["title"]["text"] for b in spec["vconcat"]] == ["dense", "gmp", "snip"]  # as the rows: dense first
    assert [b["transform"][-1]["filter"] for b in spec["vconcat"]] == [
        "(datum.method === 'dense')", "(datum.method === 'gmp')", "(datum.method === 'snip')"]
    assert spec["title"].startswith("Accuracy") and all(b["encoding"]["y"]["title"] is None for b in spec["vconcat"])
