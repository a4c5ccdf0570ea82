"""The Layers page under AppTest: a layers x models heat map of what each method pruned, following the sidebar's
model and comparison, the selected model's profile beside its reference's, and on a store written before
layers.parquet a message saying how to add it; plus its charts on their own."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analysis.layers import layer_profile
from dashboard.charts.layers import layer_heatmap, layer_pair
from dashboard.pages import PAGES
from store import layout
from store.catalog import Catalog
from testkit.app import open_app, specs
from testkit.synthetic import LAYERS

PAGE = PAGES["layers"].script


@pytest.fixture(scope="module")
def store(dashboard_store) -> Path:
    return dashboard_store


def test_the_heat_map_shows_every_models_layers_and_outlines_the_selected_model(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGE, model="m02-gmp-50")
    heat, pair = specs(app)
    assert heat["mark"]["type"] == "rect" and heat["encoding"]["color"]["field"] == "sparsity"
    assert heat["encoding"]["y"]["sort"] == [f"{name} · {kind}" for name, kind, *_ in LAYERS]  # network order
    (pick,) = heat["params"]
    assert pick["value"] == [{"model_id": "m02-gmp-50"}] and pick["select"]["fields"] == ["model_id"]
    titles = [chart["title"]["text"] for chart in pair["hconcat"]]
    assert titles == ["selected: m02-gmp-50", "compared with: m00-dense-0"]  # the model's base by default
    assert app.dataframe[0].value["model_id"].unique().tolist() == ["m00-dense-0", "m02-gmp-50"]


def test_the_page_follows_the_measure_and_the_sidebars_comparison(monkeypatch, store) -> None:
    app = open_app(monkeypatch, store, PAGE, model="m03-ltr-50", compare="m01-ft-50")
    app.segmented_control(key="layers_measure").set_value("channels_kept").run()
    assert not app.exception, app.exception
    heat, pair = specs(app)
    assert heat["encoding"]["color"]["field"] == "channels_kept"
    assert [chart["title"]["text"] for chart in pair["hconcat"]] == ["selected: m03-ltr-50",
                                                                     "compared with: m01-ft-50"]
    assert all(layer["encoding"]["x"]["field"] == "channels_kept" for chart in pair["hconcat"] for layer in chart["layer"])


def test_a_store_without_layer_rows_says_how_to_add_them(monkeypatch, store, pristine_copy) -> None:
    old = pristine_copy(store)
    (old / layout.LAYERS).unlink()
    app = open_app(monkeypatch, old, PAGE)
    assert not specs(app) and not app.error
    (message,) = [info.value for info in app.info]
    assert "layers.parquet" in message and "python -m compute index --store" in message


def test_a_damaged_layers_file_is_named_on_the_layers_page_and_the_others_work(monkeypatch, store,
                                                                               pristine_copy) -> None:
    damaged = pristine_copy(store)
    path = damaged / layout.LAYERS
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    app = open_app(monkeypatch, damaged, PAGE)
    shown = "\n".join(error.value for error in app.error).replace("\\", "")  # markdown escapes removed
    assert "layers.parquet: not a readable Parquet file" in shown and "python -m compute index" in shown
    app.switch_page(PAGES["overview"].script).run()
    assert not app.exception and not app.error, [error.value for error in app.error]


def test_the_heat_map_orders_models_like_every_page_and_layers_like_the_network(store) -> None:
    profile = layer_profile(Catalog(store))
    shuffled = profile.sample(fraction=1.0, shuffle=True, seed=1)
    spec = layer_heatmap(shuffled, "sparsity", None).to_dict()
    (rows,) = spec["datasets"].values()
    assert len(rows) == 4 * len(LAYERS) and "params" in spec and "value" not in spec["params"][0]
    assert spec["encoding"]["x"]["sort"] == ["dense", "ft 50%", "gmp 50%", "ltr 50%"]
    assert spec["encoding"]["y"]["sort"][-1] == "classifier · linear"
    one = layer_pair(profile.filter(pl.col("model_id") == "m01-ft-50"), "sparsity", "m01-ft-50", None).to_dict()
    assert len(one["hconcat"]) == 1  # nothing to compare with: the model alone
