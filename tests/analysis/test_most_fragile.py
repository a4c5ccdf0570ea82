"""The gallery's question (analysis.presets.most_fragile): per corruption, the samples it breaks most often
among the models right on the clean image, checked against a count over every prediction row."""

from __future__ import annotations

import polars as pl
import pytest

from analysis import presets
from testkit.study import write_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("fragile") / "store", num_samples=40)


def brute_force(catalog) -> pl.DataFrame:
    rows = catalog.query("SELECT model_id, corruption, severity, sample_id, correct, margin FROM predictions",
                         name="test.rows")
    right = rows.filter((pl.col("corruption") == "clean") & pl.col("correct")).select("model_id", "sample_id")
    under = rows.filter(pl.col("corruption") != "clean").join(right, on=["model_id", "sample_id"])
    return under.group_by("corruption", "sample_id").agg(
        (~pl.col("correct")).sum().alias("wrong"), pl.len().alias("checked"),
        pl.col("severity").filter(~pl.col("correct")).min().alias("first_wrong_severity"),
        pl.col("margin").min().alias("worst_margin")).filter(pl.col("wrong") > 0)


def test_most_fragile_ranks_each_corruptions_samples_by_how_often_it_breaks_them(catalog) -> None:
    found = presets.most_fragile(catalog, 3)
    expected = brute_force(catalog)
    assert set(found["corruption"]) == set(expected["corruption"])
    for (corruption,), top in found.group_by("corruption"):
        assert top.height == 3
        every = expected.filter(pl.col("corruption") == corruption)
        assert sorted(top["wrong"], reverse=True) == sorted(every["wrong"], reverse=True)[:3]
        checked = top.join(every, on=["corruption", "sample_id"], suffix="_expected")
        assert checked.height == 3
        for column in ("wrong", "checked", "first_wrong_severity"):
            assert checked[column].to_list() == checked[f"{column}_expected"].to_list()
    assert {"label", "label_name"} <= set(found.columns)
