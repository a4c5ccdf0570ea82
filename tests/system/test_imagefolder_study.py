"""End to end on CPU: a 200-class `imagefolder` study at 64 px and a handful of 224-px images (generated),
trained and extracted through the command line (compute's main, in this process), then every dashboard page
rendered on each store with AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from compute import checkpoint, footprint, models
from compute.__main__ import main
from dashboard.pages import PAGES

# training through the command line, then every page rendered on each store
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")
CLASSES = 200


def write_tree(root: Path, rng: np.random.Generator, classes: int, size: int) -> None:
    """root/{train,test}/<class>/*.png: 1 training and 2 test images per class, size high, 9/8 as wide."""
    for index in range(classes):
        tint = rng.integers(0, 256, 3)
        for split, count in (("train", 1), ("test", 2)):
            folder = root / split / f"class_{index:03d}"
            folder.mkdir(parents=True)
            for k in range(count):
                noise = rng.integers(0, 64, (size, size * 9 // 8, 3))
                Image.fromarray(((tint + noise) % 256).astype(np.uint8)).save(folder / f"{k}.png")


def compute(*args: str) -> None:
    """`python -m compute ARGS` in this process, on one torch thread (the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(list(args)) == 0
    finally:
        torch.set_num_threads(threads)


def make_study(base: Path, classes: int, size: int) -> Path:
    write_tree(base / "images", np.random.default_rng(0), classes, size)
    data = ["--dataset", "imagefolder", "--data-dir", str(base / "images"), "--image-size", str(size),
            "--device", "cpu"]
    compute("train", *data, "--epochs", "1", "--batch-size", "100", "--out", str(base / "dense.pt"),
            "--model-id", "dense")
    torch.manual_seed(1)  # a second, untrained model: the pages compare models
    mean, std = [0.5] * 3, [0.25] * 3
    checkpoint.save(base / "random.pt", models.build("small_cnn", classes, mean, std), arch="small_cnn",
                    num_classes=classes, mean=mean, std=std, dataset="imagefolder",
                    hparams={"model_id": "random", "method": "random", "target_sparsity": 0.5, "seed": 1})
    compute("extract", *data, "--store", str(base / "store"), "--checkpoints", str(base / "dense.pt"),
            str(base / "random.pt"), "--corruptions", "gaussian_noise", "contrast", "--severities", "1",
            "--batch-size", "100")
    return base / "store"


@pytest.fixture(scope="module")
def studies(tmp_path_factory, latency_not_timed) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as patch:  # timing was nine tenths of the 224-px extraction; unread here
        patch.setattr(footprint, "latency", latency_not_timed)
        return {"200 classes at 64 px": make_study(tmp_path_factory.mktemp("if64"), CLASSES, 64),
                "3 classes at 224 px": make_study(tmp_path_factory.mktemp("if224"), 3, 224)}


@pytest.mark.parametrize(("name", "classes", "size"), [("200 classes at 64 px", CLASSES, 64),
                                                       ("3 classes at 224 px", 3, 224)])
def test_the_stores_hold_every_class_at_the_image_size(studies, name, classes, size) -> None:
    manifest = json.loads((studies[name] / "manifest.json").read_text())
    assert manifest["dataset"] == "imagefolder"
    assert manifest["num_classes"] == classes and manifest["num_samples"] == 2 * classes
    assert manifest["image_size"] == size


@pytest.mark.parametrize("name", ["200 classes at 64 px", "3 classes at 224 px"])
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_each_study(monkeypatch, studies, name, page) -> None:
    monkeypatch.setenv("PRUNESCOPE_STORE", str(studies[name]))
    app = AppTest.from_file(APP, default_timeout=180).run()
    app.switch_page(PAGES[page].script)
    app.run()
    assert not app.exception, app.exception
    assert not app.error, [element.value for element in app.error]
    assert app.title and not any("No store at" in warning.value for warning in app.warning)
    if page == "overview":
        assert app.metric[0].label == "models" and app.metric[0].value == "2"
