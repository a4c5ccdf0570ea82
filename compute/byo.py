"""Bring your own model: load a user's network (or a RobustBench one) and put it behind our contract.

The contract (compute.models.base) asks for `forward_features(x)` and an `nn.Linear` `classifier`. A model
that has them is used as it is. Otherwise, when its last layer is an `nn.Linear` or a 1x1 `nn.Conv2d`,
it is wrapped: the features are the input of that layer, captured by a forward hook while the model
runs unchanged, and a 1x1 convolution becomes the equivalent linear layer (applied per position, so a
global average pool after it still commutes). The first forward checks that the wrapped model's own
output equals classifier(features), so a model that does more after its last layer (a softmax, a
temperature) fails loudly instead of yielding wrong geometry.

Models must take images in [0, 1]; pass mean/std when yours expects normalised input.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from compute.models import ContractError, Normalize, check_contract


class Conv1x1AsLinear(nn.Module):
    """A 1x1 convolution computed by an nn.Linear, so the same weights serve as the classifier."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.linear = nn.Linear(conv.in_channels, conv.out_channels, bias=conv.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(conv.weight.flatten(1))
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.linear.weight[:, :, None, None], self.linear.bias)


class HookedContract(nn.Module):
    """A model whose last layer is linear, seen through the contract: features = that layer's input."""

    def __init__(self, model: nn.Module, last_layer: str, name: str) -> None:
        super().__init__()
        self.model = model
        self.name = name
        last = model.get_submodule(last_layer)
        if isinstance(last, nn.Conv2d):
            last = Conv1x1AsLinear(last)
            parent, _, child = last_layer.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, last)
            self.classifier = last.linear
        else:
            self.classifier = last
        self._captured: torch.Tensor | None = None
        self._checked = False
        last.register_forward_hook(self._capture)

    def _capture(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        self._captured = inputs[0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x)
        captured, self._captured = self._captured, None
        if captured is None:
            raise ContractError(f"{self.name}: its last layer did not run in forward(x)")
        features = captured.mean(dim=(2, 3)) if captured.dim() == 4 else captured.flatten(1)
        if not self._checked:
            self._check(output, features)
        return features

    @torch.no_grad()
    def _check(self, output: torch.Tensor, features: torch.Tensor) -> None:
        """The model's own output must be classifier(features): nothing may follow the last layer."""
        expected = self.classifier(features).float()
        output = output.float().reshape(expected.shape) if output.numel() == expected.numel() else output
        tolerance = 1e-2 * (1.0 + float(expected.abs().max()))
        if output.shape != expected.shape or float((output - expected).abs().max()) > tolerance:
            raise ContractError(f"{self.name}: its output is not its last layer applied to that layer's input "
                                "(something follows the last linear layer, e.g. a softmax or a pooling other "
                                "than global average); add forward_features(x) and a classifier nn.Linear")
        self._checked = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


class Normalized(nn.Module):
    """Normalise [0, 1] images for a model that expects standardised input; keeps the contract."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.model = model
        self.classifier = model.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def last_layer_name(model: nn.Module) -> str:
    """The last registered module that holds parameters itself: the output layer in sequential designs."""
    names = [name for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))]
    if not names:
        raise ContractError(f"{type(model).__name__} has no layers with parameters")
    return names[-1]


def as_contract(model: nn.Module, name: str = "model", last_layer: str | None = None,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> nn.Module:
    """`model` behind the forward_features / classifier contract (unchanged when it already meets it).

    `last_layer` names the output layer when registration order does not end with it.
    """
    if callable(getattr(model, "forward_features", None)) and isinstance(getattr(model, "classifier", None),
                                                                          nn.Linear):
        wrapped = model
    else:
        layer = last_layer or last_layer_name(model)
        try:
            module = model.get_submodule(layer)
        except AttributeError:
            raise ContractError(f"{name} has no layer named {layer!r}") from None
        is_linear = isinstance(module, nn.Linear)
        is_1x1 = isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1 \
            and module.stride == (1, 1) and module.padding in ((0, 0), "valid")
        if not (is_linear or is_1x1):
            raise ContractError(f"{name} has no forward_features/classifier, and its last layer {layer!r} "
                                f"({type(module).__name__}) is neither an nn.Linear nor a 1x1 nn.Conv2d; add "
                                "forward_features(x) returning the classifier's input and a classifier nn.Linear")
        wrapped = HookedContract(model, layer, name)
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError("give both mean and std, or neither")
        wrapped = Normalized(wrapped, mean, std)
    check_contract(wrapped, name)
    return wrapped.eval()


def _state_dict(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: plain, or under 'state_dict' / 'model' / 'net', DataParallel prefixes gone."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or non-tensor files
        raise ValueError(f"checkpoint {path} is not a readable torch state dict: {error}") from error
    for key in ("state_dict", "model", "net"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
            break
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"checkpoint {path} holds no state dict (a dict of tensors)")
    return {k.removeprefix("module."): v for k, v in payload.items()}


def load_user_model(spec: str, checkpoint: str | None = None, *, last_layer: str | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> nn.Module:
    """Import `package.module:function`, call it, load `checkpoint` into the result, wrap it into the contract.

    The module must be importable (on PYTHONPATH or installed); the function takes no arguments.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"model spec must look like 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for model {spec!r}: {error}") from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{module_name!r} has no callable {attribute!r} (model spec {spec!r})")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ContractError(f"{spec}() returned {type(model).__name__}, not a torch nn.Module")
    if checkpoint is not None:
        try:
            model.load_state_dict(_state_dict(checkpoint))
        except RuntimeError as error:
            raise ValueError(f"checkpoint {checkpoint} does not fit {spec}(): {error}") from error
    return as_contract(model, name=spec, last_layer=last_layer, mean=mean, std=std)


def load_robustbench(name: str, dataset: str = "cifar10", threat_model: str = "corruptions",
                     model_dir: str | Path = "models") -> nn.Module:
    """A RobustBench model zoo entry (downloaded into `model_dir` by RobustBench), behind our contract.

    RobustBench models take [0, 1] images and normalise inside, as ours do. `threat_model` defaults to the
    common-corruptions leaderboard, the one this tool studies.
    """
    try:
        from robustbench.utils import load_model
    except ImportError as error:
        raise ImportError("RobustBench models need the robustbench package, which prunescope does not install: "
                          "pip install robustbench") from error
    model = load_model(model_name=name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
    return as_contract(model, name=f"RobustBench {dataset}/{threat_model} model {name!r}")
