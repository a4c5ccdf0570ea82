"""Models as people have them, end to end through `python -m compute extract --model`: a timm
EfficientNet-B0 and ViT (timm's forward_features is the unpooled map: features must come through
forward_head(pre_logits=True)), a torchvision ResNet, and a nested DataParallel checkpoint; plus the
load-time probe's errors, --normalize and the state-dict reader."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
import torch
import torchvision
from torch import nn

from compute import byo, checkpoint, datasets, models
from compute.models.base import ContractError, check_contract
from store import layout

requires_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None,
                                   reason="timm is an optional dependency (requirements-optional.txt)")

ROOT = Path(__file__).resolve().parents[2]
IMAGES = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
ZOO = textwrap.dedent("""
    import torch
    import torchvision


    def effnet():
        import timm

        torch.manual_seed(0)
        return timm.create_model("efficientnet_b0", num_classes=10)


    def vit():
        import timm

        torch.manual_seed(0)
        return timm.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32)


    def resnet():
        torch.manual_seed(0)
        return torchvision.models.resnet18(num_classes=10)
""")


@pytest.fixture
def zoo(tmp_path, monkeypatch) -> Path:
    """An importable module `user_zoo` with the three factories, as a user would have on PYTHONPATH."""
    (tmp_path / "user_zoo.py").write_text(ZOO)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("user_zoo", None)


@requires_timm
def test_timm_features_are_pooled_pre_logits_not_forward_features() -> None:
    import timm

    model = timm.create_model("efficientnet_b0", num_classes=10).eval()
    assert model.forward_features(IMAGES).dim() == 4  # what trusting the name used to feed the geometry
    wrapped = byo.as_contract(model)
    with torch.no_grad():
        features = wrapped.forward_features(IMAGES)
        assert features.shape == (3, 1280)
        torch.testing.assert_close(wrapped(IMAGES), model(IMAGES))
    assert wrapped.classifier is model.get_classifier()


@requires_timm
def test_timm_without_a_classifier_is_explained() -> None:
    import timm

    with pytest.raises(ContractError, match="num_classes >= 2"):
        byo.as_contract(timm.create_model("resnet18", num_classes=0))


def test_torchvision_classifiers_use_their_final_linear_layer() -> None:
    tiny_vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2,
                                                    hidden_dim=32, mlp_dim=64, num_classes=5)
    for model, head in ((torchvision.models.resnet18(num_classes=5), "fc"), (tiny_vit, "heads.head"),
                        (torchvision.models.efficientnet_b0(num_classes=5), "classifier.1")):
        model.eval()
        wrapped = byo.as_contract(model)
        assert wrapped.classifier is model.get_submodule(head)
        with torch.no_grad():
            torch.testing.assert_close(wrapped(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-5)


def test_an_unpooled_forward_features_is_refused_at_load_with_the_fix() -> None:
    class Unpooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.classifier = nn.Conv2d(3, 4, 3), nn.Linear(4, 10)

        def forward_features(self, x):
            return self.conv(x)

        def forward(self, x):
            return self.classifier(self.forward_features(x).mean((2, 3)))

    with pytest.raises(ContractError, match=r"returned \(2, 4, 30, 30\), expected \(N, D\).*forward_head"):
        byo.as_contract(Unpooled())


def test_a_model_that_cannot_take_the_image_size_is_explained() -> None:
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2,
                                                 hidden_dim=32, mlp_dim=64, num_classes=5)
    with pytest.raises(ContractError, match="probe batch of shape \\(2, 3, 64, 64\\)"):
        byo.as_contract(model, image_size=64)


@pytest.mark.parametrize(("text", "mean", "std"), [
    ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ("0.5,0.25", (0.5,) * 3, (0.25,) * 3),
    ("0.1,0.2,0.3,0.4,0.5,0.6", (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)),
])
def test_normalize_conventions_and_explicit_values(text, mean, std) -> None:
    assert byo.parse_normalize(text) == (mean, std)


@pytest.mark.parametrize("text", ["imagenette", "0.5", "1,2,3", "0.5,0"])
def test_bad_normalize_is_named(text) -> None:
    with pytest.raises(ValueError, match="--normalize must be"):
        byo.parse_normalize(text)


def test_nested_and_dataparallel_state_dicts_are_read(tmp_path) -> None:
    weights = nn.Linear(3, 2).state_dict()
    path = tmp_path / "nested.pt"
    torch.save({"epoch": 7, "model": {"state_dict": {f"module.module.{k}": v for k, v in weights.items()}},
                "optimizer": {"lr": torch.tensor(0.1)}}, path)
    state = checkpoint.read_state_dict(path)
    assert state.keys() == weights.keys()
    torch.save({"epoch": 7, "optimizer": {"step": 3}}, path)
    with pytest.raises(ValueError, match="holds no state dict.*found: \\['epoch', 'optimizer'\\]"):
        checkpoint.read_state_dict(path)


def extract(store: Path, zoo: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(zoo), str(ROOT)])}
    command = [sys.executable, "-m", "compute", "extract", "--store", str(store), "--limit", "4",
               "--corruptions", "gaussian_noise", "--severities", "1", "--device", "cpu", *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def stored_rows(store: Path):
    return ds.dataset(store / layout.PREDICTIONS, format="parquet", partitioning="hive").to_table()


@pytest.mark.parametrize("factory", [pytest.param("effnet", marks=requires_timm),
                                     pytest.param("vit", marks=requires_timm), "resnet"])
@pytest.mark.slow  # extract as a process, timm and torchvision
def test_extract_cli_takes_timm_and_torchvision_models(tmp_path, zoo, factory) -> None:
    result = extract(tmp_path / "store", zoo, "--model", f"user_zoo:{factory}", "--normalize", "imagenet")
    assert result.returncode == 0, result.stderr
    rows = stored_rows(tmp_path / "store")
    assert rows.num_rows == 8 and set(rows.column("model_id").to_pylist()) == {factory}
    assert all(rows.column("finite").to_pylist())


@pytest.mark.slow  # extract as a process
def test_extract_cli_loads_a_nested_dataparallel_checkpoint_into_a_torchvision_resnet(tmp_path, zoo) -> None:
    torch.manual_seed(5)
    trained = torchvision.models.resnet18(num_classes=10).eval()
    nn.init.normal_(trained.fc.weight)
    path = tmp_path / "dp.pt"
    torch.save({"epoch": 90, "model": {"state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}}},
               path)
    result = extract(tmp_path / "store", zoo, "--model", "user_zoo:resnet", "--weights", str(path),
                     "--normalize", "imagenet")
    assert result.returncode == 0, result.stderr
    rows = stored_rows(tmp_path / "store").filter(ds.field("corruption") == "clean").sort_by("sample_id")
    test = datasets.load("digits").test.subset(4)
    model = byo.as_contract(trained, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    with torch.no_grad():
        x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255
        features = model.forward_features(x)
        logits = model.classifier(features)
    np.testing.assert_allclose(rows.column("feature_norm").to_numpy(), features.norm(dim=1).numpy(), rtol=1e-4)
    assert rows.column("pred").to_pylist() == logits.argmax(1).tolist()


@pytest.mark.slow  # extract as a process
def test_extract_cli_explains_a_model_that_breaks_the_contract(tmp_path, zoo) -> None:
    (zoo / "user_bad.py").write_text(textwrap.dedent("""
        import torch


        def softmaxed():
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                       torch.nn.Linear(4, 10), torch.nn.Softmax(dim=1))
    """))
    result = extract(tmp_path / "store", zoo, "--model", "user_bad:softmaxed")
    assert result.returncode == 2
    assert result.stderr.startswith("error: user_bad:softmaxed: its output differs from classifier(features)")
    assert "softmax" in result.stderr and "Traceback" not in result.stderr


def test_imagenet_style_resnets_are_in_the_registry() -> None:
    for arch, size in (("resnet18_imagenet", 224), ("resnet18_64", 64)):
        model = models.build(arch, 200, [0.5] * 3, [0.25] * 3).eval()
        byo.probe(model, model.forward, arch, size)
        check_contract(model, arch)
    assert models.build("resnet50_64", 200, [0.5] * 3, [0.25] * 3).classifier.in_features == 2048
    stem = models.build("resnet18_imagenet", 10, [0.5] * 3, [0.25] * 3).body[0]
    assert stem.kernel_size == (7, 7) and stem.stride == (2, 2)
    assert models.build("resnet18_64", 10, [0.5] * 3, [0.25] * 3).body[0].stride == (1, 1)


def test_a_study_file_takes_a_normalize_key() -> None:
    from compute.study_file import Study, StudyError

    raw = {"arch": "small_cnn", "dataset": "digits", "methods": {"random": {"sparsities": [0.5]}}}
    assert Study.from_dict({**raw, "normalize": "cifar10"}).normalize == "cifar10"
    with pytest.raises(StudyError, match="normalize: --normalize must be"):
        Study.from_dict({**raw, "normalize": "imagenette"})
