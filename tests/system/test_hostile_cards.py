"""Model ids and cards that a hostile or careless store holds (issue 28): each is named and refused, or
tolerated with one message naming the model, on every page and command; never a traceback, never a
model dropped silently."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard.pages import PAGES
from store import layout, reader
from store.catalog import Catalog
from store.layout import StoreError
from store.verify import verify

SIZE = {"num_models": 4, "num_samples": 12, "corruptions": ("fog",), "severities": (1,)}


@pytest.fixture
def store(synthetic_store, pristine_copy) -> Path:
    return pristine_copy(synthetic_store(**SIZE))


def _rewrite_models(store: Path, change, schema: pa.Schema | None = None) -> list[dict]:
    table = pq.read_table(store / layout.MODELS)
    rows = change(table.to_pylist())
    pq.write_table(pa.Table.from_pylist(rows, schema=schema or table.schema), store / layout.MODELS)
    return rows


def _rename_model(store: Path, old: str, new: str) -> None:
    """The model `old` renamed `new` in models.parquet and in its partition folder (a hostile copy)."""
    _rewrite_models(store, lambda rows: [{**row, "model_id": new if row["model_id"] == old else row["model_id"]}
                                         for row in rows])
    folder = store / layout.PREDICTIONS / f"model_id={old}"
    folder.rename(folder.with_name(f"model_id={new}"))


@pytest.mark.parametrize("hostile", ["m00\\x", "=m00", "m00 x"], ids=["backslash", "leading =", "space"])
def test_a_hostile_model_id_is_named_and_refused_when_the_store_is_opened(store, cli, hostile) -> None:
    """A backslash cut the hive key and the model vanished from every report; a leading `=` ended `report`
    in a BinderException. Opening the store now refuses it in one line naming the id, and verify names it."""
    first = reader.read_table(store / layout.MODELS).column("model_id")[0].as_py()
    _rename_model(store, first, hostile)
    with pytest.raises(StoreError, match="is not a model id") as refused:
        Catalog(store)
    assert repr(hostile) in str(refused.value) or hostile in str(refused.value)
    for fmt in ("markdown", "csv", "latex"):
        ran = cli("report", "--store", store, "--format", fmt)
        assert ran.returncode == 2 and "is not a model id" in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr and "BinderException" not in ran.stderr
    assert any("not a valid" in problem.message for problem in verify(store, views=("models", "predictions")))


def test_a_hostile_id_is_refused_at_extraction_before_anything_is_loaded(cli, tmp_path) -> None:
    ran = cli("extract", "--store", tmp_path / "store", "--model", "os:getcwd", "--model-id", "=cmd|x")
    assert ran.returncode == 2 and "--model-id: '=cmd|x' is not a model id" in ran.stderr, ran.stderr
    assert not (tmp_path / "store").exists()


def _text_costs(rows: list[dict]) -> list[dict]:
    return [{**row, "file_bytes": "big", "latency_ms_batch1": "slow"} for row in rows]


def _null_sparsity(rows: list[dict]) -> list[dict]:
    return [{**row, "target_sparsity": None, "base": rows[0]["model_id"]} if index == 1 else row
            for index, row in enumerate(rows)]


@pytest.mark.parametrize(("change", "text_columns", "named"), [
    (_text_costs, ("file_bytes", "latency_ms_batch1"), "file_bytes big is not a whole number"),
    (_null_sparsity, (), "target_sparsity is missing"),
], ids=["costs stored as text", "null target sparsity on a model with a base"])
def test_cards_of_the_wrong_type_or_null_are_named_by_verify_and_tolerated_by_the_pages(
        store, open_page, change, text_columns, named) -> None:
    table = pq.read_table(store / layout.MODELS)
    schema = pa.schema([pa.field(f.name, pa.string()) if f.name in text_columns else f for f in table.schema])
    rows = _rewrite_models(store, change, schema)
    problems = [problem.message for problem in verify(store, views=("models",))]
    assert problems and all(column in " ".join(problems) for column in (*text_columns, *(
        ["target_sparsity"] if change is _null_sparsity else []))), problems
    overview = open_page(store, PAGES["overview"].script)
    assert not overview.error, [e.value for e in overview.error]
    (warning,) = [w.value for w in overview.warning if "model cards" in w.value]
    model = rows[1 if change is _null_sparsity else 0]["model_id"]
    assert model.replace("-", "\\-") in warning and named.replace("_", "\\_") in warning, warning
    matrix = open_page(store, PAGES["matrix"].script)
    assert not matrix.error, [e.value for e in matrix.error]


def _chain(rows: list[dict], length: int) -> list[dict]:
    """`length` copies of the first model, each the base of the next (a lineage 2,000 deep)."""
    first = rows[0]
    return rows + [{**first, "model_id": f"c{index}", "base": f"c{index - 1}" if index else first["model_id"]}
                   for index in range(length)]


def test_a_chain_of_2000_bases_is_drawn_without_recursion_and_named_by_verify(store, open_page) -> None:
    _rewrite_models(store, lambda rows: _chain(rows, 2000))
    overview = open_page(store, PAGES["overview"].script)
    assert not overview.error, [e.value for e in overview.error]
    (problem,) = [p.message for p in verify(store, views=("models",))]
    assert "bases from its root, more than 64" in problem


def test_verify_names_a_cycle_of_bases(store) -> None:
    def cycle(rows):
        ids = [row["model_id"] for row in rows]
        return [{**row, "base": ids[(index + 1) % len(ids)]} for index, row in enumerate(rows)]

    _rewrite_models(store, cycle)
    (problem,) = [p.message for p in verify(store, views=("models",))]
    assert problem.startswith("the bases form a cycle (m00")


def test_a_partition_folder_with_a_hostile_model_id_is_named_and_refused(store) -> None:
    folder = next((store / layout.PREDICTIONS).iterdir())
    folder.rename(folder.with_name(folder.name + "\\x"))
    with pytest.raises(StoreError, match=r"predictions/'model_id=.*\\\\x': not a model id; refused"):
        Catalog(store)


def test_a_file_swapped_for_a_link_while_served_is_named_once_relative_to_the_store(store, open_page,
                                                                                    tmp_path) -> None:
    app = open_page(store, PAGES["overview"].script)
    target = store / layout.MODELS
    elsewhere = tmp_path / "elsewhere.parquet"
    target.rename(elsewhere)
    target.symlink_to(elsewhere)
    app.switch_page(PAGES["matrix"].script)
    app.run()
    (message,) = [e.value for e in app.error]  # the file named, relative to the store; not the store
    assert "- `models.parquet`: a symbolic link" in message and f"`{store.name}`" not in message, message
    assert str(tmp_path) not in message
