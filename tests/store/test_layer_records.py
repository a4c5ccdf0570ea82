"""layers.parquet, what pruning left of each layer: written through store.writer (per model, nothing else
lost), read by the catalog's `layers` view against each model's reference, and checked by verify (schema,
kinds, counts, ids of models.parquet); `compute index` refuses a damaged one, naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import queries
from analysis.layers import layer_profile
from store import layout, reader, writer
from store.catalog import Catalog
from store.verify import verify
from testkit.synthetic import LAYERS


@pytest.fixture
def store(synthetic_store, pristine_copy, tmp_path) -> Path:
    """A fresh copy of a clean synthetic store (layer rows included), to change."""
    return pristine_copy(synthetic_store(num_models=3, num_samples=20, corruptions=("fog",), severities=(1,)),
                         tmp_path / "store")


def rewrite(store: Path, change: Callable[[dict], dict | None]) -> None:
    """layers.parquet with each row changed by `change` (None drops it), written as a user's tool might."""
    rows = [changed for row in reader.read_layers(store).to_pylist() if (changed := change(row)) is not None]
    pq.write_table(pa.Table.from_pylist(rows, schema=layout.LAYER_SCHEMA), store / layout.LAYERS)


def test_a_synthetic_store_has_clean_layer_rows_for_every_model(store) -> None:
    assert verify(store) == []
    table = reader.read_layers(store)
    assert table.schema == layout.LAYER_SCHEMA
    assert set(table.column("model_id").to_pylist()) == set(reader.read_table(store / layout.MODELS)
                                                            .column("model_id").to_pylist())
    assert table.num_rows == 3 * len(LAYERS)


def test_upserting_a_model_replaces_only_its_rows(store) -> None:
    before = reader.read_layers(store).to_pylist()
    row = {"layer": "fc", "position": 0, "kind": "linear", "num_weights": 20, "num_nonzero": 5, "out_channels": 2,
           "live_out_channels": 1, "weight_norm": 1.5}
    writer.upsert_layers(store, {"m01-ft-50": [row]})
    after = reader.read_layers(store).to_pylist()
    assert [r for r in after if r["model_id"] == "m01-ft-50"] == [{**row, "model_id": "m01-ft-50"}]
    assert [r for r in after if r["model_id"] != "m01-ft-50"] == [r for r in before if r["model_id"] != "m01-ft-50"]
    assert not list((store / "_tmp").glob("*")), "written atomically: no temporary file left"


def test_the_layers_view_counts_channels_kept_against_the_reference(store) -> None:
    rewrite(store, lambda r: {**r, "live_out_channels": r["out_channels"] // 4}
            if r["model_id"] == "m01-ft-50" and r["layer"] == "body.3" else r)
    profile = layer_profile(Catalog(store), ["m01-ft-50"])
    assert profile["layer"].to_list() == [name for name, *_ in LAYERS]  # network order
    kept = dict(zip(profile["layer"], profile["channels_kept"], strict=True))
    assert kept == {"body.0": 1.0, "body.3": 0.25, "body.6": 1.0, "classifier": 1.0}
    assert set(profile["reference_model_id"]) == {"m00-dense-0"}
    sparsity = profile["sparsity"].to_numpy()
    assert np.allclose(sparsity, 1 - profile["num_nonzero"].to_numpy() / profile["num_weights"].to_numpy())
    dense = layer_profile(Catalog(store), ["m00-dense-0"])
    assert dense["channels_kept"].is_null().all()  # nothing to compare with


def test_a_store_without_layer_rows_opens_with_an_empty_profile(store) -> None:
    (store / layout.LAYERS).unlink()
    catalog = Catalog(store)
    assert not catalog.has_layers and layer_profile(catalog).is_empty()
    assert verify(store) == []  # the file is optional: stores written before it are whole


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


# Each damage of layers.parquet and a phrase of verify's message about it.
DAMAGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated": (lambda s: _truncate(s / layout.LAYERS), "not a readable Parquet"),
    "another schema": (lambda s: pq.write_table(pa.table({"model_id": ["m00-dense-0"]}), s / layout.LAYERS),
                       "lacks column(s)"),
    "a count of the wrong type": (lambda s: pq.write_table(
        reader.read_layers(s).set_column(4, "num_weights", pa.array([1.0] * (3 * len(LAYERS)))), s / layout.LAYERS),
        "column 'num_weights' is double"),
    "more non-zeros than weights": (lambda s: rewrite(s, lambda r: {**r, "num_nonzero": r["num_weights"] + 1}),
                                    "num_nonzero <= num_weights"),
    "more live channels than channels": (
        lambda s: rewrite(s, lambda r: {**r, "live_out_channels": r["out_channels"] + 1}),
        "live_out_channels <= out_channels"),
    "an unknown kind": (lambda s: rewrite(s, lambda r: {**r, "kind": "attention"}), "kind 'attention'"),
    "a layer twice": (lambda s: rewrite(s, lambda r: {**r, "layer": "body.0"}), "lists a layer of a model twice"),
    "a model models.parquet lacks": (lambda s: rewrite(s, lambda r: {**r, "model_id": "ghost"}),
                                     "model ids ['ghost'] are not in models.parquet"),
    "a directory": (lambda s: (s / layout.LAYERS).unlink() or (s / layout.LAYERS).mkdir(), ""),
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_verify_names_a_damaged_layers_file_and_how_to_rebuild_it(store, case) -> None:
    damage, phrase = DAMAGES[case]
    damage(store)
    problems = verify(store)
    named = [p for p in problems if p.path == store / layout.LAYERS]
    assert named and all(p.view == "layers" for p in named), [str(p) for p in problems]
    assert any(phrase in p.message for p in named), [str(p) for p in named]
    if case != "a directory":
        assert all("python -m compute index" in p.message for p in named)


def test_index_refuses_a_damaged_layers_file_naming_it(store, cli) -> None:
    _truncate(store / layout.LAYERS)
    result = cli("index", "--store", str(store))
    assert result.returncode == 2 and f"{store / layout.LAYERS}: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", ["truncated", "another schema", "a count of the wrong type"])
def test_a_damaged_layers_file_fails_only_the_layer_questions_naming_it(store, case) -> None:
    DAMAGES[case][0](store)
    catalog = Catalog(store)  # the other questions of the store still open
    assert queries.models(catalog).height == 3
    with pytest.raises(layout.StoreError, match="layers.parquet"):
        layer_profile(catalog)
