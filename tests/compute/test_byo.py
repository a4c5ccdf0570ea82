"""Bring your own model: user and RobustBench-style architectures wrapped into the contract, offline."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from compute import byo, models
from compute.models.base import ContractError, check_contract, prunable_weights


class WideBasic(nn.Module):
    """RobustBench's WideResNet block (pre-activation), as in robustbench/model_zoo/architectures."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        return self.conv2(F.relu(self.bn2(self.conv1(out)))) + shortcut


class WideResNet(nn.Module):
    """RobustBench's WideResNet layout: conv1, three blocks, bn1, relu, global pool, `fc` last."""

    def __init__(self, num_classes: int = 10, widen: int = 1) -> None:
        super().__init__()
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.block1 = WideBasic(widths[0], widths[1], 1)
        self.block2 = WideBasic(widths[1], widths[2], 2)
        self.block3 = WideBasic(widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        self.nChannels = widths[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.avg_pool2d(self.relu(self.bn1(out)), 8)
        return self.fc(out.view(-1, self.nChannels))


def conv_head_model(pool_first: bool) -> nn.Module:
    """Ends in a 1x1 conv: after global pooling (then flatten), or before it (pooling commutes)."""
    body = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()]
    if pool_first:
        return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 10, 1), nn.Flatten())
    return nn.Sequential(*body, nn.Conv2d(8, 10, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def randomised(model: nn.Module) -> nn.Module:
    """Random weights and batch-norm statistics, in eval mode, so nothing is trivially zero or one."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(module.weight, 1.0, 0.2)
            nn.init.normal_(module.bias, 0.0, 0.2)
    return model.eval()


IMAGES = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("make", [WideResNet, lambda: conv_head_model(True), lambda: conv_head_model(False)],
                         ids=["wideresnet-fc", "pool-then-1x1-conv", "1x1-conv-then-pool"])
def test_wrapped_model_meets_the_contract_and_keeps_its_outputs(make) -> None:
    model = randomised(make())
    with torch.no_grad():
        expected = model(IMAGES).flatten(1)
        wrapped = byo.as_contract(model)
        check_contract(wrapped)
        features = wrapped.forward_features(IMAGES)
        torch.testing.assert_close(wrapped(IMAGES), wrapped.classifier(features))
        torch.testing.assert_close(wrapped(IMAGES), expected, rtol=1e-4, atol=1e-5)
    assert features.shape == (len(IMAGES), wrapped.classifier.in_features)


def test_the_wrapped_classifier_is_the_models_own_last_layer() -> None:
    model = randomised(WideResNet())
    wrapped = byo.as_contract(model)
    assert wrapped.classifier is model.fc
    assert all(module is not wrapped.classifier for _, module in prunable_weights(wrapped))


def test_a_model_that_already_meets_the_contract_is_used_as_it_is() -> None:
    model = models.build("small_cnn", 10, [0.5] * 3, [0.25] * 3)
    assert byo.as_contract(model) is model


def test_a_model_not_ending_in_a_linear_layer_is_refused_clearly() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(3600, 10), nn.BatchNorm1d(10))
    with pytest.raises(ContractError, match="neither an nn.Linear nor a 1x1 nn.Conv2d"):
        byo.as_contract(model)


def test_a_model_doing_more_after_its_last_layer_fails_at_load() -> None:
    model = nn.Sequential(WideResNet(), nn.Softmax(dim=1)).eval()
    with pytest.raises(ContractError, match="something follows the last linear layer"):
        byo.as_contract(model)


def test_mean_and_std_normalise_inside_the_wrapper() -> None:
    model = randomised(WideResNet())
    wrapped = byo.as_contract(model, mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), 0.2
    with torch.no_grad():
        torch.testing.assert_close(wrapped(IMAGES), model((IMAGES - mean) / std))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """An importable user module `my_nets` with a factory, as a user would have on PYTHONPATH."""
    (tmp_path / "my_nets.py").write_text(textwrap.dedent("""
        from torch import nn

        def tiny():
            return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(4, 10))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_nets", None)


def test_load_user_model_imports_calls_loads_and_wraps(user_module) -> None:
    import my_nets

    source = my_nets.tiny()
    nn.init.normal_(source[-1].weight)
    path = user_module / "weights.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = byo.load_user_model("my_nets:tiny", str(path))
    with torch.no_grad():
        torch.testing.assert_close(model(IMAGES), source(IMAGES))
        torch.testing.assert_close(model(IMAGES), model.classifier(model.forward_features(IMAGES)))


@pytest.mark.parametrize(("spec", "message"), [
    ("my_nets", "package.module:function"),
    ("no_such_module_here:f", "cannot import.*working directory.*PYTHONPATH"),
    ("my_nets:missing", "no callable 'missing'"),
])
def test_bad_model_specs_are_named(spec, message, user_module) -> None:
    with pytest.raises(ValueError, match=message):
        byo.load_user_model(spec)


def test_a_checkpoint_that_does_not_fit_is_named(user_module) -> None:
    path = user_module / "other.pt"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit my_nets:tiny"):
        byo.load_user_model("my_nets:tiny", str(path))


def test_robustbench_without_the_package_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "robustbench", None)
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    with pytest.raises(ValueError, match="pip install robustbench"):
        byo.load_robustbench("Standard")


def test_robustbench_models_are_wrapped(monkeypatch) -> None:
    calls = {}

    def load_model(**kwargs):
        calls.update(kwargs)
        return randomised(WideResNet())

    package = types.ModuleType("robustbench")
    utils = types.ModuleType("robustbench.utils")
    utils.load_model = load_model
    package.utils = utils
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    model = byo.load_robustbench("Hendrycks2020AugMix_WRN", model_dir="/tmp/rb")
    assert calls == {"model_name": "Hendrycks2020AugMix_WRN", "model_dir": "/tmp/rb", "dataset": "cifar10",
                     "threat_model": "corruptions"}
    with torch.no_grad():
        torch.testing.assert_close(model(IMAGES), model.classifier(model.forward_features(IMAGES)))
