"""End to end: the demo command on a tiny setting, then the store agrees with the models themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis import matrices, queries
from compute import checkpoint, corruptions, datasets
from compute.__main__ import main
from compute.datasets.base import ImageSet
from compute.train import predict
from store import layout, reader
from store.catalog import Catalog
from store.confine import resolve_allowed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "store"
    assert main(["demo", "--out", str(out), "--quick", "--device", "cpu"]) == 0
    return out


def test_accuracy_matrix_equals_accuracy_computed_from_each_model(demo_store) -> None:
    catalog = Catalog(demo_store)
    manifest = catalog.manifest
    test = datasets.load("digits").test.subset(manifest["num_samples"])
    matrix = matrices.accuracy_matrix(catalog)
    model_rows = queries.models(catalog)
    assert model_rows.height >= 2 and "dense" in model_rows["method"].to_list()
    expected_cells = model_rows.height * (1 + len(manifest["corruptions"]) * len(manifest["severities"]))
    assert matrix.height == expected_cells
    for row in model_rows.iter_rows(named=True):
        model, _ = checkpoint.load(resolve_allowed(demo_store, row["checkpoint"]))  # recorded store-relative
        for corruption, severity in [("clean", 0), (manifest["corruptions"][0], manifest["severities"][-1])]:
            images = (test.images if corruption == "clean"
                      else corruptions.corrupt(test.images, corruption, severity, seed=0))
            preds = predict(model, ImageSet(images, test.labels), torch.device("cpu"))
            direct = float(np.mean(preds == test.labels))
            stored = matrix.filter((matrix["model_id"] == row["model_id"]) & (matrix["corruption"] == corruption)
                                   & (matrix["severity"] == severity))["accuracy"].item()
            assert stored == pytest.approx(direct, abs=1.5 / len(test)), (row["model_id"], corruption, severity)
        assert row["clean_accuracy"] == pytest.approx(
            matrix.filter((matrix["model_id"] == row["model_id"]) & (matrix["corruption"] == "clean"))["accuracy"].item())


def test_pruned_model_reports_measured_sparsity(demo_store) -> None:
    rows = queries.models(Catalog(demo_store))
    pruned = rows.filter(rows["method"] != "dense")
    assert pruned.height >= 1
    for row in pruned.iter_rows(named=True):
        assert row["sparsity"] == pytest.approx(row["target_sparsity"], abs=0.01)
        assert row["num_nonzero"] < row["num_params"]


def test_every_pruned_model_records_its_dense_model_as_base(demo_store) -> None:
    rows = queries.models(Catalog(demo_store))
    dense = rows.filter(rows["method"] == "dense")["model_id"].to_list()
    assert len(dense) == 1 and rows.filter(rows["method"] == "dense")["base"].to_list() == [None]
    pruned = rows.filter(rows["method"] != "dense")
    assert pruned["base"].to_list() == dense * pruned.height  # compute.cards.fill_bases, from the run records
    assert set(pruned["reference_model_id"].to_list()) == set(dense)


def test_rerunning_the_demo_skips_every_complete_partition(demo_store) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (demo_store / layout.COMPLETE).glob("*.json")}
    assert main(["demo", "--out", str(demo_store), "--quick", "--device", "cpu"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (demo_store / layout.COMPLETE).glob("*.json")}
    assert before == after
    assert all(reader.is_complete(demo_store, **{k: p[k] for k in ("model_id", "corruption", "severity")})
               for p in reader.complete_partitions(demo_store))


def test_a_lost_partition_is_rewritten_exactly_once(demo_store) -> None:
    victim = reader.complete_partitions(demo_store)[-1]
    keys = {k: victim[k] for k in ("model_id", "corruption", "severity")}
    (demo_store / layout.COMPLETE / f"{keys['model_id']}__{keys['corruption']}__{keys['severity']}.json").unlink()
    assert not reader.is_complete(demo_store, **keys)
    assert main(["demo", "--out", str(demo_store), "--quick", "--device", "cpu"]) == 0
    assert reader.is_complete(demo_store, **keys)
    files = list(reader.partition_file(demo_store, **keys).parent.glob("*.parquet"))
    assert len(files) == 1


def test_the_demo_store_has_the_embeddings_every_page_needs(demo_store) -> None:
    import pyarrow.parquet as pq

    models = queries.models(Catalog(demo_store))
    folder = demo_store / layout.EMBEDDINGS
    placed = pq.read_table(folder / layout.MODEL_EMBEDDING).to_pydict()
    assert sorted(placed["model_id"]) == sorted(models["model_id"].to_list())
    assert set(placed["projection"]) == {"pca"}  # the quick demo; `make demo` uses UMAP
    assert pq.read_table(folder / layout.MODEL_TREE).num_rows == models.height - 1  # a spanning tree
    samples = pq.read_table(folder / layout.SAMPLE_EMBEDDING)
    assert samples.num_rows == Catalog(demo_store).manifest["num_samples"]  # the dense model, clean
    assert np.isfinite(samples.column("x").to_numpy()).all()


def test_the_demo_records_every_models_layers_and_they_add_up_to_its_card(demo_store) -> None:
    cards = {card["model_id"]: card for card in reader.read_table(demo_store / layout.MODELS).to_pylist()}
    rows = reader.read_layers(demo_store).to_pylist()
    assert {row["model_id"] for row in rows} == set(cards)
    for model_id, card in cards.items():
        pruned = [row for row in rows if row["model_id"] == model_id and row["layer"] != "classifier"]
        zeros = sum(row["num_weights"] - row["num_nonzero"] for row in pruned)
        assert zeros / sum(row["num_weights"] for row in pruned) == pytest.approx(card["sparsity"]), model_id
