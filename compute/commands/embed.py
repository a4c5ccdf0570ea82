"""Precompute the 2-D views the dashboard shows: every model placed by the similarity of its per-sample
geometry (UMAP + minimum spanning tree), and the samples of one or more models in one setting placed by
their per-class angles and feature length (UMAP). Writes embeddings/models.parquet, embeddings/mst.parquet
and embeddings/samples.parquet in the store; run it again after adding models.

Model vectors: angle_true, feature_norm and margin of every sample under the chosen corruptions and
severities, z-scored per metric (analysis.embeddings.model_vectors). With fewer than 4 models, or when UMAP
fails, PCA is used instead and the output says so. UMAP compiles with numba on its first use (~1 min).

Examples:
    python -m compute embed --store data/demo
    python -m compute embed --store data/study --corruptions clean fog contrast --severities 3,5
    python -m compute embed --store data/study --sample-models m01-lrr-90 m00-dense-0 \\
        --sample-corruption fog --sample-severity 3
"""

from __future__ import annotations

import argparse

from compute.commands._common import non_negative_int, parse_severities, severity_or_clean
from compute.embed import EmbedPlan, embed_store
from store.verify import require_clean

HELP = "precompute UMAP embeddings and the model spanning tree for the dashboard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory written by `compute extract` or `demo`")
    parser.add_argument("--corruptions", nargs="+", default=["clean"], metavar="NAME",
                        help="settings whose per-sample geometry makes up each model's vector (default: clean)")
    parser.add_argument("--severities", type=parse_severities, default=None,
                        help="severities of the corrupted settings, e.g. 1-5 or 3,5 (default: all present)")
    parser.add_argument("--sample-models", nargs="+", default=None, metavar="MODEL_ID",
                        help="models whose samples are embedded together (default: the study's reference "
                        "model, the base most models share; else the first model)")
    parser.add_argument("--sample-corruption", default="clean", help="setting of the sample embedding")
    parser.add_argument("--sample-severity", type=severity_or_clean, default=0, help="its severity (0 for clean)")
    parser.add_argument("--projection", choices=("umap", "pca"), default="umap",
                        help="umap (default) or pca (instant, deterministic, linear)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="UMAP random state")
    parser.add_argument("--reference", default=None, metavar="MODEL_ID",
                        help="compare every model with this one (default: each model with its base)")


def run(args: argparse.Namespace) -> int:
    require_clean(args.store, views=("samples", "models", "predictions"))  # exit 2 naming each damaged file
    plan = EmbedPlan(corruptions=args.corruptions, severities=args.severities, sample_models=args.sample_models,
                     sample_corruption=args.sample_corruption, sample_severity=args.sample_severity,
                     projection=args.projection, seed=args.seed, reference=args.reference)
    written = embed_store(args.store, plan)
    print("wrote " + ", ".join(f"embeddings/{name} ({rows} rows)" for name, rows in written.items()))
    return 0
