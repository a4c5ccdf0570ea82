"""A chart that cannot place a model says which and why, in one line under it (the Overview's charts)."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq

from dashboard.charts.overview import PLACED_BY_COST, PLACED_BY_SPARSITY, unplaced
from dashboard.pages import PAGES
from store import layout


def test_the_note_names_each_model_left_out_and_why() -> None:
    frame = pl.DataFrame({"model_id": ["a", "b", "c"], "sparsity": [0.0, None, 0.5],
                          "clean_accuracy": [0.9, 0.8, None]})
    assert unplaced(frame, PLACED_BY_SPARSITY) == ("Not shown: b (no measured sparsity); c (no clean "
                                                   "predictions).")
    assert unplaced(frame.filter(pl.col("model_id") == "a"), PLACED_BY_SPARSITY) is None
    assert unplaced(frame, {"file_bytes": "no file size measured"}).count(";") == 2  # an absent column


def test_the_overview_says_which_model_the_cost_chart_leaves_out(synthetic_store, pristine_copy, open_page) -> None:
    store = pristine_copy(synthetic_store(num_models=3, num_samples=12, corruptions=["fog"], severities=(1,)))
    table = pq.read_table(store / layout.MODELS)
    ids = table.column("model_id").to_pylist()
    costs = {"file_bytes": [1000, None, 3000], "latency_ms_batch1": [1.0, 1.0, 1.0],
             "latency_ms_batch256": [0.5, 0.5, 0.5]}
    for name, values in costs.items():
        index = table.schema.get_field_index(name)
        column = pl.Series(values, dtype=pl.Int64 if name == "file_bytes" else pl.Float64).to_arrow()
        table = table.set_column(index, table.schema.field(name), column.cast(table.schema.field(name).type))
    pq.write_table(table, store / layout.MODELS)
    app = open_page(store, PAGES["overview"].script)
    captions = [caption.value for caption in app.caption]
    assert f"Not shown: {ids[1]} (no file size measured)." in captions
    assert not any(c.startswith("Not shown") and PLACED_BY_COST["file_bytes"] not in c for c in captions)
