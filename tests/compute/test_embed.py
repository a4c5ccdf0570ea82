"""compute.embed and `python -m compute embed`: projections, the spanning tree against brute force, and the
files it writes read back through the analysis package. UMAP itself runs once, in the one slow test."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import embeddings, sql
from compute import embed
from compute.__main__ import main
from store import layout
from store.catalog import Catalog
from testkit import synthetic


@pytest.fixture(scope="module")
def small_store(synthetic_store, tmp_path_factory):
    """A copy of the session's store of this size: the embed command adds embeddings/ to it."""
    store = synthetic_store(num_models=3, num_samples=40, corruptions=("fog",), severities=(1, 3))
    return Path(shutil.copytree(store, tmp_path_factory.mktemp("embed") / "store", symlinks=True))


def connects_all(n: int, edges: tuple[tuple[int, int, float], ...]) -> bool:
    """Whether the edges join n points into one component (union-find)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j, _ in edges:
        parent[root(i)] = root(j)
    return len({root(i) for i in range(n)}) == 1


def brute_force_tree_weight(points: np.ndarray) -> float:
    """The weight of the lightest spanning tree, trying every set of n - 1 edges (tiny n only)."""
    n = len(points)
    edges = [(i, j, float(np.linalg.norm(points[i] - points[j]))) for i, j in itertools.combinations(range(n), 2)]
    return min(sum(d for _, _, d in chosen) for chosen in itertools.combinations(edges, n - 1)
               if connects_all(n, chosen))


def test_spanning_tree_is_the_lightest_tree_over_euclidean_distances() -> None:
    points = np.random.default_rng(0).normal(size=(6, 5))
    edges = embed.spanning_tree(points)
    assert len(edges) == 5
    assert len({i for i, _, _ in edges} | {j for _, j, _ in edges}) == 6
    for i, j, distance in edges:
        assert distance == pytest.approx(np.linalg.norm(points[i] - points[j]))
    assert sum(d for _, _, d in edges) == pytest.approx(brute_force_tree_weight(points))


def test_spanning_tree_connects_identical_vectors_with_distance_zero() -> None:
    points = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    edges = embed.spanning_tree(points)
    assert len(edges) == 2
    assert sorted(d for _, _, d in edges) == [0.0, 5.0]


def test_pca_keeps_the_distances_of_points_in_a_plane() -> None:
    rng = np.random.default_rng(1)
    plane = rng.normal(size=(10, 2)) @ rng.normal(size=(2, 6))  # rank 2 in 6 dimensions
    coordinates = embed.pca(plane)
    original = np.linalg.norm(plane[:, None] - plane[None], axis=-1)
    projected = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=-1)
    np.testing.assert_allclose(projected, original, atol=1e-9)
    np.testing.assert_array_equal(embed.pca(np.ones((1, 4))), np.zeros((1, 2)))


def test_fewer_than_four_points_fall_back_to_pca_and_say_so() -> None:
    placed = embed.project(np.random.default_rng(2).normal(size=(3, 8)))
    assert placed.method == "pca" and "only 3 points" in placed.note
    assert placed.coordinates.shape == (3, 2)


def test_embed_command_writes_files_the_analytics_read_back(small_store, capsys) -> None:
    assert main(["embed", "--store", str(small_store), "--projection", "pca", "--corruptions", "clean", "fog",
                 "--severities", "3"]) == 0
    assert "embeddings/mst.parquet (2 rows)" in capsys.readouterr().out
    catalog = Catalog(small_store)
    models = embeddings.model_embedding(catalog)
    vectors = embeddings.model_vectors(catalog, ["clean", "fog"], [3])
    assert models["model_id"].to_list() == vectors["model_id"].to_list()
    assert models["projection"].unique().to_list() == ["pca"]
    matrix = np.stack([np.asarray(v) for v in vectors["vector"].to_list()])
    np.testing.assert_allclose(models.select("x", "y").to_numpy(), embed.pca(matrix), rtol=1e-4, atol=1e-4)
    tree = embeddings.model_tree(catalog)
    index = {model_id: i for i, model_id in enumerate(vectors["model_id"])}
    for source, target, distance in tree.iter_rows():
        assert distance == pytest.approx(np.linalg.norm(matrix[index[source]] - matrix[index[target]]), rel=1e-5)
    samples = embeddings.sample_embedding(catalog)
    assert samples.height == 40 and samples["model_id"].unique().to_list() == [sql.reference_model(catalog)]
    assert embeddings.sample_embedding(catalog, "m01-ft-50").is_empty()
    assert not list((small_store / "_tmp").iterdir()), "embeddings are written atomically"


def test_embeddings_are_fresh_only_for_their_plan_and_the_current_predictions(synthetic_store, pristine_copy) -> None:
    store = pristine_copy(synthetic_store(num_models=3, num_samples=20, corruptions=("fog",), severities=(1,)))
    plan = embed.EmbedPlan(projection="pca")
    assert not embed.embeddings_fresh(store, plan)
    embed.embed_store(store, plan, report=lambda line: None, progress=False)
    assert embed.embeddings_fresh(store, plan)
    assert not embed.embeddings_fresh(store, embed.EmbedPlan(projection="pca", seed=1))  # another definition
    synthetic.rewrite_partition(store, "fog", 1)  # written again: a model extracted again under the same id
    assert not embed.embeddings_fresh(store, plan)


def test_embed_command_refuses_settings_without_predictions(small_store, capsys) -> None:
    assert main(["embed", "--store", str(small_store), "--corruptions", "snow", "--projection", "pca"]) == 2
    assert "no predictions for ['snow']" in capsys.readouterr().err


def test_embed_help_explains_the_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = capsys.readouterr().out
    assert "UMAP" in text and "minimum spanning tree" in text and "--sample-models" in text


@pytest.mark.slow
def test_umap_embeds_samples_of_several_models(small_store) -> None:
    written = embed.embed_store(small_store, embed.EmbedPlan(sample_models=["m00-dense-0", "m01-ft-50"]),
                                report=lambda line: None, progress=False)
    assert written[layout.SAMPLE_EMBEDDING] == 80
    samples = embeddings.sample_embedding(Catalog(small_store))
    assert samples["projection"].unique().to_list() == ["umap"]
    assert samples.select(pl.col("x", "y").is_finite().all()).row(0) == (True, True)
    assert samples.group_by("model_id").len()["len"].to_list() == [40, 40]
