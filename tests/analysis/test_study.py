"""The notebook API (analysis.open_study): each method returns the named query's frame, the reference works
as on the command line, and a bad value gets one error naming it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analysis import Study, matrices, open_study, presets, queries
from analysis.filters import FILTER_HELP, REFERENCE_EXAMPLE, FilterError
from analysis.sql import NoReference
from store.catalog import Catalog
from store.layout import StoreError
from testkit.direct import direct_rows
from testkit.study import write_study
from testkit.synthetic import write_store

README = Path(__file__).resolve().parents[2] / "README.md"

DENSE, FT, GMP = "m00-dense-0", "m01-ft-50", "m02-gmp-50"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_store(tmp_path_factory.mktemp("study") / "store", num_models=3, num_samples=60,
                       corruptions=["fog"], severities=[5])


@pytest.fixture(scope="module")
def study(store) -> Study:
    with open_study(store) as opened:
        yield opened


def test_flipped_are_the_samples_the_reference_gets_right_and_the_model_wrong(study, store) -> None:
    rows = direct_rows(store).filter((pl.col("corruption") == "fog") & (pl.col("severity") == 5))
    right = set(rows.filter((pl.col("model_id") == DENSE) & pl.col("correct"))["sample_id"].to_list())
    wrong = set(rows.filter((pl.col("model_id") == FT) & ~pl.col("correct"))["sample_id"].to_list())
    flipped = study.flipped(FT, "fog", 5)
    assert right & wrong and set(flipped["sample_id"].to_list()) == right & wrong
    assert flipped.equals(presets.flipped_by_pruning(Catalog(store), DENSE, FT, "fog", 5))


def test_a_chosen_reference_replaces_the_base_as_on_the_command_line(study, store) -> None:
    assert study.flipped(FT, "fog", 5, reference=GMP).equals(
        presets.flipped_by_pruning(Catalog(store), GMP, FT, "fog", 5))
    assert study.models(reference=GMP).filter(pl.col("model_id") == FT)["reference_model_id"][0] == GMP
    chosen = open_study(store, reference=GMP)
    assert chosen.matrix().equals(matrices.metric_matrix(Catalog(store, reference=GMP)))
    with pytest.raises(NoReference, match="m00-dense-0"):
        study.flipped(DENSE, "fog", 5)  # the dense model has no base


def test_each_method_is_its_named_query(study, store) -> None:
    catalog = Catalog(store)
    assert study.models().equals(queries.models(catalog))
    assert study.matrix("margin", group_by="method").equals(matrices.metric_matrix(catalog, "margin", "method"))
    assert study.sample(3).equals(queries.sample_rows(catalog, 3))
    hits = study.filter("reference_correct AND NOT correct AND corruption = 'fog'", limit=1000)
    assert hits.height and hits["reference_correct"].all() and not hits["correct"].any()
    report = study.report(by="model")
    assert set(report["row"].to_list()) == {DENSE, FT, GMP}
    assert set(report.columns) >= {"row", "column_name", "mean", "low", "high", "p_value"}


@pytest.mark.parametrize(("call", "error", "names"), [
    (lambda s: s.flipped("nope", "fog", 5), ValueError, "'nope'"),
    (lambda s: s.flipped(FT, "frost", 5), ValueError, "'frost'; the store has: clean, fog"),
    (lambda s: s.flipped(FT, "fog", 7), ValueError, "severity 7"),
    (lambda s: s.flipped(FT, "clean", 5), ValueError, "severity 5"),
    (lambda s: s.matrix("speed"), ValueError, "'speed'"),
    (lambda s: s.matrix(group_by="seed"), ValueError, "'seed'"),
    (lambda s: s.sample(999), ValueError, "sample 999"),
    (lambda s: s.filter("colour = 1"), FilterError, "colour"),
    (lambda s: s.report(by="arch"), ValueError, "'arch'"),
    (lambda s: s.report(columns="wide"), ValueError, "'wide'"),
    (lambda s: s.models(reference="nope"), StoreError, "'nope'"),
])
def test_a_bad_value_is_named_in_one_line(study, call, error, names) -> None:
    with pytest.raises(error, match=names.replace("(", r"\(")) as raised:
        call(study)
    assert "\n" not in str(raised.value)


def test_a_missing_store_is_named(tmp_path) -> None:
    with pytest.raises(StoreError, match="no store directory at"):
        open_study(tmp_path / "absent")
    with pytest.raises(StoreError, match="manifest.json is missing"):
        open_study(tmp_path)


# -- the README's notebook section ----------------------------------------------------------------------

# The demo's ids, so the README's lines run unchanged but for the store's path.
DEMO_LIKE = [("small_cnn-dense-s0", "dense", 0.0, 0), ("small_cnn-ft-90-s0", "ft", 0.9, 0),
             ("small_cnn-ft-50-s0", "ft", 0.5, 0)]


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("demo-like") / "store", models=DEMO_LIKE,
                       settings=[("clean", 0), ("fog", 5)])


def readme_notebook_snippet() -> str:
    """The README's ```python block that opens data/demo."""
    blocks = README.read_text().split("```python\n")[1:]
    found = [block.split("```")[0] for block in blocks if 'open_study("data/demo")' in block]
    assert len(found) == 1, "the README has one python block opening data/demo"
    return found[0]


def test_the_readme_snippet_answers_in_three_lines(demo_like) -> None:
    snippet = readme_notebook_snippet()
    assert len(snippet.strip().splitlines()) <= 3
    namespace: dict = {}
    exec(compile(snippet.replace("data/demo", str(demo_like)), "README.md", "exec"), namespace)  # noqa: S102
    lines = snippet.strip().splitlines()
    answer = eval(lines[-1], namespace)  # noqa: S307 (the README's own line)
    expected = presets.flipped_by_pruning(Catalog(demo_like), "small_cnn-dense-s0", "small_cnn-ft-90-s0", "fog", 5)
    assert expected.height and answer.equals(expected)


def test_the_filter_help_shows_the_reference_columns_answering_the_same_question(demo_like) -> None:
    paragraph = FILTER_HELP.split("Every row carries its model's reference")[1].split("Deprecated")[0]
    for column in ("reference_correct", "reference_margin", "reference_feature_norm", "reference_angle_true"):
        assert column in paragraph
    assert REFERENCE_EXAMPLE in paragraph
    with open_study(demo_like) as study:
        rows = study.filter(REFERENCE_EXAMPLE, limit=10_000)
        flipped = study.flipped("small_cnn-ft-90-s0", "fog", 5)
    assert set(rows["model_id"]) == {"small_cnn-ft-90-s0"}
    assert sorted(rows["sample_id"]) == sorted(flipped["sample_id"])
