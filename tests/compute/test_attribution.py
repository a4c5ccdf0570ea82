"""Occlusion attribution and model loading on their own, without Streamlit: the maps of a real checkpoint,
and one load_model for every card, refused outside the store and the allowed roots."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from compute import attribution, checkpoint, loading, models
from store import layout
from testkit.app import ATTRIBUTED, CORRUPTIONS, attach_checkpoint
from testkit.synthetic import write_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = write_store(tmp_path_factory.mktemp("attribution"), num_models=4, num_samples=8, corruptions=CORRUPTIONS,
                       severities=(1,))
    attach_checkpoint(root, ATTRIBUTED)
    return root


def test_occlusion_attribution_maps_cover_the_image(store) -> None:
    model, _ = checkpoint.load(store / "checkpoints" / f"{ATTRIBUTED}.pt")
    image = np.load(store / layout.IMAGES / "clean.npy")[3]
    maps = attribution.occlusion(model, image, label=2, patch=8, stride=4)
    for metric in attribution.METRICS:
        assert maps[metric].shape == image.shape[:2]
        assert np.isfinite(maps[metric]).all()
    assert 0 <= maps["original"]["angle_true"] <= 180
    assert loading.missing_checkpoint(store, None) and loading.missing_checkpoint(store, str(store / "gone.pt"))


def test_occlusion_maps_load_the_card_s_model_once_and_give_the_maps_of_occlusion(store) -> None:
    recorded = f"checkpoints/{ATTRIBUTED}.pt"
    image = np.load(store / layout.IMAGES / "clean.npy")[3]
    seen = []
    maps = attribution.occlusion_maps(str(store), recorded, image, 2, progress=lambda done, total: seen.append(done))
    model = loading.load_model({"checkpoint": recorded, "loader": None}, 32, root=store)
    expected = attribution.occlusion(model, image, 2)
    for metric in attribution.METRICS:
        np.testing.assert_allclose(maps[metric], expected[metric], rtol=1e-5, atol=1e-6)
    assert seen and seen[-1] == 1 + attribution.GRID ** 2
    loads = attribution._model.cache_info().misses
    attribution.occlusion_maps(str(store), recorded, image, 2)
    assert attribution._model.cache_info().misses == loads  # the same file: loaded once per process


def test_load_model_reads_every_loader_kind_through_one_door(store, tmp_path) -> None:
    recorded = f"checkpoints/{ATTRIBUTED}.pt"
    card = {"checkpoint": recorded, "loader": json.dumps({"kind": "checkpoint"})}
    assert loading.load_model(card, 32, root=store).classifier.out_features == 10  # as models.parquet records it
    assert loading.load_model({"checkpoint": str(store / recorded), "loader": None}, 32).classifier is not None
    with pytest.raises(layout.StoreError, match="outside the store"):  # the policy, before anything is read
        loading.load_model({"checkpoint": "/etc/passwd", "loader": None}, 32, root=store)
    with pytest.raises(layout.StoreError, match="cannot be imported"):
        loading.load_model({"checkpoint": None, "loader": {"kind": "module", "function": "no_such_pkg.x:net"}}, 32,
                           root=store)
    with pytest.raises(ValueError, match="no loader of kind 'elsewhere'"):
        loading.load_model({"checkpoint": None, "loader": {"kind": "elsewhere"}}, 32)
    damaged = store / "checkpoints" / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(layout.StoreError) as refused:  # names the model's checkpoint, not the server's path
        loading.load_model({"checkpoint": "checkpoints/damaged.pt", "loader": None}, 32, root=store)
    assert str(damaged) not in str(refused.value)


def test_load_model_reads_a_robustbench_card_as_the_card_says(monkeypatch) -> None:
    calls = {}

    def load_model(**kwargs):
        calls.update(kwargs)
        return models.build("small_cnn", 10, [0.5] * 3, [0.25] * 3)

    package, utils = types.ModuleType("robustbench"), types.ModuleType("robustbench.utils")
    utils.load_model, package.utils = load_model, utils
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    loader = {"kind": "robustbench", "name": "Standard", "dataset": "cifar10", "threat_model": "corruptions",
              "model_dir": "/tmp/rb"}
    assert loading.load_model({"checkpoint": None, "loader": json.dumps(loader)}, 32).classifier is not None
    assert calls == {"model_name": "Standard", "model_dir": "/tmp/rb", "dataset": "cifar10",
                     "threat_model": "corruptions"}
