"""Named queries: the dashboard and the CLI call these and get Polars frames; no SQL lives elsewhere."""

from __future__ import annotations

import polars as pl

from store.catalog import Catalog


def models(catalog: Catalog) -> pl.DataFrame:
    """One row per model, dense first, then by method and sparsity."""
    return catalog.query("""
        SELECT model_id, arch, method, target_sparsity, sparsity, seed, num_params, num_nonzero,
               clean_accuracy, dense_model_id, checkpoint, hparams
        FROM models
        ORDER BY method <> 'dense', method, target_sparsity, seed, model_id
    """)


def accuracy_matrix(catalog: Catalog) -> pl.DataFrame:
    """Accuracy per (model, corruption, severity), with the model's method and sparsity for grouping."""
    return catalog.query("""
        WITH acc AS (
            SELECT model_id, corruption, severity, avg(correct::INTEGER) AS accuracy, count(*) AS samples
            FROM predictions
            GROUP BY ALL
        )
        SELECT acc.*, m.method, m.target_sparsity, m.sparsity, m.arch
        FROM acc JOIN models m USING (model_id)
        ORDER BY m.method <> 'dense', m.method, m.target_sparsity, acc.model_id, acc.corruption, acc.severity
    """)


def sample_rows(catalog: Catalog, sample_id: int) -> pl.DataFrame:
    """Every prediction of one sample across models, corruptions and severities."""
    return catalog.query("""
        SELECT p.model_id, m.method, m.target_sparsity, p.corruption, p.severity, p.label, p.pred,
               p.correct, p.confidence, p.p_true, p.angle_true, p.feature_norm, p.margin, p.loss
        FROM predictions p JOIN models m USING (model_id)
        WHERE p.sample_id = ?
        ORDER BY m.method <> 'dense', m.method, m.target_sparsity, p.model_id, p.corruption <> 'clean',
                 p.corruption, p.severity
    """, [int(sample_id)])


def samples(catalog: Catalog) -> pl.DataFrame:
    return catalog.query("SELECT sample_id, label, label_name, split FROM samples ORDER BY sample_id")
