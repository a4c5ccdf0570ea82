"""Precomputed 2-D views of a store, for the dashboard's geometric-similarity and embedding pages.

- Models: each model is one long vector of its per-sample geometry (analysis.embeddings.model_vectors); the
  vectors are projected to 2-D with UMAP, and linked by a minimum spanning tree over their pairwise
  euclidean distances (the paper's similarity view).
- Samples: each sample of the chosen models in one setting is the vector (angle to every class,
  feature_norm), standardised per column and projected to 2-D with UMAP (analysis.embeddings.sample_vectors).

UMAP needs a neighbourhood: with fewer than MIN_UMAP_POINTS points (or if UMAP fails) the projection is
PCA instead, and the written files say so in their `projection` column. Results go under embeddings/ in
the store, each file written atomically; the dashboard only reads them.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform
from tqdm import tqdm

from analysis import embeddings, sql
from store import derived, derived_record, layout, writer
from store.catalog import Catalog

MIN_UMAP_POINTS = 4
MAX_NEIGHBOURS = 15


@dataclass(frozen=True)
class Projection:
    """2-D coordinates of the rows of a matrix, the method that made them, and why when it is not UMAP."""

    coordinates: np.ndarray
    method: str
    note: str = ""


def pca(vectors: np.ndarray) -> np.ndarray:
    """The rows' coordinates on the two leading principal axes (zeros where there are fewer axes)."""
    centred = np.asarray(vectors, np.float64) - np.mean(vectors, axis=0)
    coordinates = np.zeros((len(centred), 2))
    if len(centred) > 1:
        left, singular, _ = np.linalg.svd(centred, full_matrices=False)
        components = min(2, len(singular))
        coordinates[:, :components] = left[:, :components] * singular[:components]
    return coordinates


def project(vectors: np.ndarray, method: str = "umap", seed: int = 0) -> Projection:
    """2-D projection of the rows: UMAP (n_neighbors = min(15, rows - 1), fixed seed), else PCA.

    PCA is used when asked for, when there are fewer than MIN_UMAP_POINTS rows (UMAP's neighbourhood graph
    is meaningless on a handful of points), or when UMAP raises; `note` says which.
    """
    if method == "pca":
        return Projection(pca(vectors), "pca", "PCA requested")
    if len(vectors) < MIN_UMAP_POINTS:
        return Projection(pca(vectors), "pca", f"PCA instead of UMAP: only {len(vectors)} points "
                                               f"(UMAP needs at least {MIN_UMAP_POINTS})")
    import umap  # imported here: it compiles with numba on first use (~1 min), needed only by this path

    reducer = umap.UMAP(n_components=2, n_neighbors=min(MAX_NEIGHBOURS, len(vectors) - 1), random_state=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # n_jobs / spectral-initialisation chatter on small inputs
            return Projection(np.asarray(reducer.fit_transform(vectors), np.float64), "umap")
    except Exception as error:  # any UMAP failure (degenerate input, numba): PCA still answers, `note` says why
        return Projection(pca(vectors), "pca", f"PCA instead of UMAP, which failed: {error}")


def spanning_tree(vectors: np.ndarray) -> list[tuple[int, int, float]]:
    """Edges (i, j, distance) of the minimum spanning tree over the rows' pairwise euclidean distances.

    scipy reads a zero in the distance matrix as "no edge", so the graph gets every distance plus 1: every
    spanning tree has n - 1 edges, so the lightest tree is the same, and identical rows stay connected
    (their edge is reported with distance 0).
    """
    distances = squareform(pdist(np.asarray(vectors, np.float64)))
    graph = distances + 1.0
    np.fill_diagonal(graph, 0.0)
    tree = minimum_spanning_tree(graph).tocoo()
    return sorted((int(i), int(j), float(distances[i, j])) for i, j in zip(tree.row, tree.col, strict=True))


def standardise(features: np.ndarray) -> np.ndarray:
    """Each column to zero mean and unit variance (constant columns to zero), so no column dominates."""
    centred = features - features.mean(axis=0)
    scale = features.std(axis=0)
    return centred / np.where(scale > 0, scale, 1.0)


@dataclass(frozen=True)
class EmbedPlan:
    """What to embed. Models: their geometry over `corruptions` x `severities` (None: all present).
    Samples: `sample_models` (None: the study's reference, else the first model) in one setting.
    `reference` is the model other models are compared with (None: each model's base)."""

    corruptions: Sequence[str] = (layout.CLEAN,)
    severities: Sequence[int] | None = None
    sample_models: Sequence[str] | None = None
    sample_corruption: str = layout.CLEAN
    sample_severity: int = 0
    projection: str = "umap"
    seed: int = 0
    reference: str | None = None


VERSION = 1  # raise when the embeddings are computed another way than the plan says


def definition(plan: EmbedPlan) -> str:
    """The digest of what computes a store's embeddings: this version and every field of `plan`."""
    return derived_record.digest(layout.EMBEDDINGS_RECORD, VERSION,
                                 json.dumps(dataclasses.asdict(plan), sort_keys=True, default=list))


def embeddings_fresh(root: str | Path, plan: EmbedPlan) -> bool:
    """True when the store's embeddings were computed by `plan` from its current prediction files."""
    return derived_record.is_fresh(root, layout.EMBEDDINGS_RECORD, definition=definition(plan),
                                   inputs=derived_record.Inputs.current(root), folder=layout.EMBEDDINGS)


def default_sample_model(catalog: Catalog, report: Callable[[str], None]) -> str:
    """The study's reference model, else (no model has a base) the first model by id; `report` says which
    and how to choose others."""
    try:
        chosen = sql.reference_model(catalog)
    except sql.NoReference:
        models = catalog.query("SELECT model_id FROM models ORDER BY model_id LIMIT 1", name="default_sample_model")["model_id"].to_list()
        if not models:
            raise ValueError(f"{catalog.root} has no models; run `python -m compute extract` first") from None
        chosen = models[0]
    report(f"samples: embedding the samples of {chosen} (choose others with --sample-models MODEL_ID ...)")
    return chosen


def embed_store(root: str | Path, plan: EmbedPlan, report: Callable[[str], None] = tqdm.write,
                progress: bool = True) -> dict[str, int]:
    """Compute and write embeddings/{models,mst,samples}.parquet for the store at `root`.

    Returns the number of rows written per file; `report` receives one line per projection saying
    which method was used and why.
    """
    root = Path(root)
    catalog = Catalog(root, reference=plan.reference)
    try:  # before any work: the models whose samples are embedded
        sample_models = list(plan.sample_models or [default_sample_model(catalog, report)])
        sql.require_models(catalog, sample_models)
    except ValueError:
        catalog.close()
        raise
    out = root / layout.EMBEDDINGS
    steps = tqdm(total=5, desc="embed", unit="step", disable=not progress)
    try:
        steps.set_postfix_str("model vectors")
        models = embeddings.model_vectors(catalog, plan.corruptions, plan.severities)
        if models.is_empty():
            raise ValueError(f"{root} has no predictions for {list(plan.corruptions)}; run `python -m compute "
                             "extract` first, or choose --corruptions that were extracted")
        vectors = np.asarray(models["vector"].explode().to_numpy(), np.float64).reshape(models.height, -1)
        steps.update()

        steps.set_postfix_str("project models")
        placed = project(vectors, plan.projection, plan.seed)
        report(f"models: {models.height} models x {vectors.shape[1]} values, {placed.method}"
               + (f" ({placed.note})" if placed.note else ""))
        steps.update()

        steps.set_postfix_str("spanning tree")
        ids = models["model_id"].to_list()
        edges = spanning_tree(vectors)
        steps.update()

        steps.set_postfix_str("sample vectors")
        samples = embeddings.sample_vectors(catalog, sample_models, plan.sample_corruption, plan.sample_severity)
        if samples.is_empty():
            raise ValueError(f"no finite predictions of {sample_models} at {plan.sample_corruption} severity "
                             f"{plan.sample_severity}; choose --sample-corruption / --sample-severity")
        angles = np.asarray(samples["angles"].explode().to_numpy(), np.float64).reshape(samples.height, -1)
        features = standardise(np.column_stack([angles, samples["feature_norm"].to_numpy()]))
        steps.update()

        steps.set_postfix_str("project samples")
        spread = project(features, plan.projection, plan.seed)
        report(f"samples: {samples.height} rows of {', '.join(sample_models)} at {plan.sample_corruption}/"
               f"{plan.sample_severity}, {spread.method}" + (f" ({spread.note})" if spread.note else ""))
        steps.update()
        inputs, input_rows = catalog.inputs, derived.input_rows(catalog)  # what the record says it read
    finally:
        steps.close()
        catalog.close()

    model_table = pa.table({
        **{name: models[name].to_arrow() for name in ("model_id", "arch", "method", "target_sparsity")},
        "x": placed.coordinates[:, 0], "y": placed.coordinates[:, 1], "projection": [placed.method] * models.height,
    }).cast(layout.MODEL_EMBEDDING_SCHEMA)
    tree_table = pa.table({
        "source": [ids[i] for i, _, _ in edges], "target": [ids[j] for _, j, _ in edges],
        "distance": [d for _, _, d in edges],
    }, schema=layout.MODEL_TREE_SCHEMA)
    keys = ("model_id", "corruption", "severity", "sample_id", "label", "label_name", "correct")
    sample_table = pa.table({
        **{name: samples[name].to_arrow() for name in keys},
        "x": spread.coordinates[:, 0], "y": spread.coordinates[:, 1], "projection": [spread.method] * samples.height,
    }).cast(layout.SAMPLE_EMBEDDING_SCHEMA)
    written = {}
    for name, table in ((layout.MODEL_EMBEDDING, model_table), (layout.MODEL_TREE, tree_table),
                        (layout.SAMPLE_EMBEDDING, sample_table)):
        writer.write_parquet(root, table, out / name)
        written[name] = table.num_rows
    derived_record.write(root, layout.EMBEDDINGS_RECORD, inputs=inputs, rows=input_rows, definition=definition(plan), outputs=written)
    return written
