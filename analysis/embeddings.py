"""Vectors for the similarity and embedding views (each model as one vector of its per-sample geometry;
per-sample angles and lengths), and the 2-D coordinates `python -m compute embed` stores from them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

from analysis.matrices import GEOMETRY
from analysis.sql import equal_to, require_models
from store import layout
from store.catalog import Catalog
from store.vocabulary import MODEL_ORDER


def _settings_filter(corruptions: Sequence[str], severities: Sequence[int] | None) -> tuple[str, list]:
    """SQL and params choosing the corruptions and, for corrupted ones, the severities (None: all)."""
    sql, params = "list_contains(?, corruption)", [list(corruptions)]
    if severities is not None:
        sql += " AND (corruption = 'clean' OR list_contains(?, severity))"
        params.append([int(s) for s in severities])
    return sql, params


def model_vectors(catalog: Catalog, corruptions: Sequence[str] = (layout.CLEAN,),
                  severities: Sequence[int] | None = None) -> pl.DataFrame:
    """Each model as one long vector of its per-sample geometry, for the similarity view (paper, view 2).

    The vector is angle_true, then feature_norm, then margin, each over every (corruption, severity,
    sample) chosen (in that order; severities apply to the corrupted settings, clean is kept when named),
    keeping only the (setting, sample) pairs every chosen model has so that positions line up across
    models. Each metric is z-scored over all models and samples together, (x - mean) / std, so the three
    weigh alike while differences between models (e.g. a larger mean angle) survive; a non-finite value
    becomes 0 (the mean). Columns: model_id, arch, method, target_sparsity, samples (vector length / 3),
    vector (list of float32).
    """
    where, params = _settings_filter(corruptions, severities)
    stats = ", ".join(f"avg({m}) FILTER (WHERE finite) AS {m}_mean, stddev_pop({m}) FILTER (WHERE finite) AS {m}_std"
                      for m in GEOMETRY)
    scored = ", ".join(f"coalesce(CASE WHEN finite THEN ({m} - {m}_mean) / nullif({m}_std, 0) END, 0)::FLOAT AS {m}"
                       for m in GEOMETRY)
    vector = " || ".join(f"list({m} ORDER BY corruption, severity, sample_id)" for m in GEOMETRY)
    return catalog.query(f"""
        WITH chosen AS (
            SELECT model_id, corruption, severity, sample_id, finite, {", ".join(GEOMETRY)}
            FROM predictions WHERE {where}
        ),
        shared AS (
            SELECT corruption, severity, sample_id FROM chosen GROUP BY ALL
            HAVING count(*) = (SELECT count(DISTINCT model_id) FROM chosen)
        ),
        kept AS (SELECT * FROM chosen SEMI JOIN shared USING (corruption, severity, sample_id)),
        stats AS (SELECT {stats} FROM kept),
        scored AS (SELECT model_id, corruption, severity, sample_id, {scored} FROM kept, stats)
        SELECT s.model_id, m.arch, m.method, m.target_sparsity, count(*) AS samples, {vector} AS vector
        FROM scored s JOIN models m USING (model_id)
        GROUP BY s.model_id, m.arch, m.method, m.target_sparsity
        ORDER BY {MODEL_ORDER}
    """, params, name="model_vectors")  # noqa: S608 (constant SQL)


def sample_vectors(catalog: Catalog, model_ids: Sequence[str], corruption: str = layout.CLEAN,
                   severity: int = 0) -> pl.DataFrame:
    """Per-sample geometry of the given models in one setting, for the feature embedding.

    Columns: model_id, corruption, severity, sample_id, label, label_name, correct, feature_norm, angles
    (one angle per class, degrees; Catalog.class_angles_sql: classes a top-k store does not keep count as
    90). Rows with non-finite geometry are left out. The store keeps no raw features, so (angles,
    feature_norm) stands in for them: the feature's length and its direction relative to every class's
    weight row, which is what the classifier sees of it.
    """
    require_models(catalog, model_ids)
    angles = catalog.class_angles_sql(every_class=True)
    return catalog.query(f"""
        SELECT p.model_id, p.corruption, p.severity, p.sample_id, p.label, s.label_name, p.correct,
               p.feature_norm, {angles} AS angles
        FROM class_values p JOIN samples s USING (sample_id)
        WHERE list_contains(?, p.model_id) AND p.corruption = ? AND p.severity = ? AND p.finite
        ORDER BY p.model_id, p.sample_id
    """, [list(model_ids), corruption, int(severity)], name="sample_vectors")  # noqa: S608 (constant SQL)


def _read_embedding(catalog: Catalog, name: str, arrow_schema: pa.Schema, where: str = "true",
                    params: Sequence[object] = ()) -> pl.DataFrame:
    """A file under embeddings/ (written by `python -m compute embed`), or an empty frame of its layout."""
    path: Path = catalog.root / layout.EMBEDDINGS / name
    if not path.is_file():
        return pl.from_arrow(arrow_schema.empty_table())
    columns = ", ".join(arrow_schema.names)  # the file's own schema: fixed names
    sql = f"SELECT {columns} FROM read_parquet(?) WHERE {where}"  # noqa: S608 (constant SQL)
    return catalog.query(sql, [str(path), *params], name="read_embedding")


def model_embedding(catalog: Catalog) -> pl.DataFrame:
    """2-D coordinates of every model (UMAP of model_vectors, or PCA: column `projection` says which)."""
    return _read_embedding(catalog, layout.MODEL_EMBEDDING, layout.MODEL_EMBEDDING_SCHEMA)


def model_tree(catalog: Catalog) -> pl.DataFrame:
    """Edges (source, target, distance) of the minimum spanning tree over the model vectors."""
    return _read_embedding(catalog, layout.MODEL_TREE, layout.MODEL_TREE_SCHEMA)


def sample_embedding(catalog: Catalog, model_id: str | None = None) -> pl.DataFrame:
    """2-D coordinates of per-sample geometry (see sample_vectors), optionally of one model only."""
    where, params = equal_to(model_id=model_id)
    return _read_embedding(catalog, layout.SAMPLE_EMBEDDING, layout.SAMPLE_EMBEDDING_SCHEMA, where, params)


