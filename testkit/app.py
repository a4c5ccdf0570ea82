"""The dashboard under streamlit's AppTest: the store every page has something to show on (embeddings, a
real checkpoint, provenance), opening the app on a page with a selection, and reading its charts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from streamlit.testing.v1 import AppTest

from analysis import queries
from compute import checkpoint
from compute import models as architectures
from compute.corruptions import IMPLEMENTATION
from store import layout, provenance, reader, writer
from store.catalog import Catalog
from testkit.synthetic import write_store

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
CORRUPTIONS = ("gaussian_noise", "contrast")
ATTRIBUTED = "m01-ft-50"  # the model of dashboard_store that gets a real checkpoint


def write_embeddings(root: Path) -> None:
    """embeddings/ as `python -m compute embed` writes it (random coordinates, the real schema)."""
    catalog = Catalog(root)
    models, samples = queries.models(catalog), queries.samples(catalog)
    rng = np.random.default_rng(0)
    folder = root / layout.EMBEDDINGS
    folder.mkdir(exist_ok=True)
    ids = models["model_id"].to_list()
    pq.write_table(pa.table({
        "model_id": ids, "arch": models["arch"].to_list(), "method": models["method"].to_list(),
        "target_sparsity": models["target_sparsity"].to_list(), "x": rng.normal(size=len(ids)).astype("f4"),
        "y": rng.normal(size=len(ids)).astype("f4"), "projection": ["umap"] * len(ids),
    }, schema=layout.MODEL_EMBEDDING_SCHEMA), folder / layout.MODEL_EMBEDDING)
    pq.write_table(pa.table({"source": ids[:-1], "target": ids[1:], "distance": [1.0] * (len(ids) - 1)},
                            schema=layout.MODEL_TREE_SCHEMA), folder / layout.MODEL_TREE)
    rows = (pl.DataFrame({"model_id": ids}).join(samples, how="cross")
            .join(pl.DataFrame({"corruption": ["clean", CORRUPTIONS[1]], "severity": [0, 3]}), how="cross"))
    pq.write_table(pa.table({
        **{name: rows[name].to_list() for name in ("model_id", "corruption", "severity", "sample_id", "label",
                                                   "label_name")},
        "correct": (rng.random(rows.height) < 0.8).tolist(), "x": rng.normal(size=rows.height).astype("f4"),
        "y": rng.normal(size=rows.height).astype("f4"), "projection": ["umap"] * rows.height,
    }, schema=layout.SAMPLE_EMBEDDING_SCHEMA), folder / layout.SAMPLE_EMBEDDING)


def attach_checkpoint(root: Path, model_id: str) -> Path:
    """Save a real (untrained) small CNN checkpoint and record it as `model_id`'s in models.parquet."""
    path = root / "checkpoints" / f"{model_id}.pt"
    mean, std = [0.5] * 3, [0.25] * 3
    checkpoint.save(path, architectures.build("small_cnn", 10, mean, std), arch="small_cnn", num_classes=10, mean=mean,
                    std=std, dataset="synthetic", hparams={"model_id": model_id})
    rows = pl.read_parquet(root / layout.MODELS).with_columns(
        pl.when(pl.col("model_id") == model_id).then(pl.lit(str(path))).otherwise(pl.col("checkpoint"))
        .alias("checkpoint"))
    writer.upsert_models(root, rows.to_dicts())
    return path


def dashboard_store(root: Path) -> Path:
    """A small synthetic study with embeddings and one real checkpoint: every page has something to show."""
    write_store(root, num_models=4, num_samples=40, corruptions=CORRUPTIONS, severities=(1, 3))
    # the Sample page regenerates images as the provenance record says
    manifest = reader.read_manifest(root)
    manifest[provenance.KEY] = {provenance.key(c, s): provenance.generated(0, IMPLEMENTATION)
                                for c in CORRUPTIONS for s in (1, 3)}
    writer.write_json(root, manifest, root / layout.MANIFEST)
    write_embeddings(root)
    write_footprints(root)
    attach_checkpoint(root, ATTRIBUTED)
    return root


def write_footprints(root: Path) -> None:
    """Every model card with a made-up footprint (bytes, CPU ms per image), so the Overview draws the
    robustness-vs-cost chart as on a real study."""
    rows = reader.read_table(root / layout.MODELS).to_pylist()
    for index, row in enumerate(rows):
        row.update(file_bytes=400_000 // (index + 1), latency_ms_batch1=2.0 / (index + 1),
                   latency_ms_batch256=1.0 / (index + 1), latency_threads=1, latency_load_average=0.5)
    writer.upsert_models(root, rows)


def open_app(monkeypatch, store_path, page: str | None = None, **selection) -> AppTest:
    """The app on `store_path`, switched to `page`, with the shared selection set as given."""
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store_path))
    app = AppTest.from_file(APP, default_timeout=120).run()
    for key, value in selection.items():
        app.session_state[key] = value
    if page:
        app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def specs(app: AppTest) -> list[dict]:
    """The Vega-Lite specs of the charts on the page."""
    return [json.loads(chart.proto.spec) for chart in app.get("vega_lite_chart")]
