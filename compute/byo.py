"""Bring your own model: load a user's network (or a RobustBench one) and put it behind our contract.

The contract (compute.models.base) asks for `forward_features(x)` -> (N, D) and an `nn.Linear` `classifier`.
How a model is put behind it, first match wins:
- a timm model (`forward_head` and `get_classifier`): features = `forward_head(forward_features(x),
  pre_logits=True)`, classifier = `get_classifier()`. timm's own `forward_features` is the unpooled feature
  map, so the name is never trusted for timm models;
- a model with `forward_features` and an `nn.Linear` `classifier` (ours, RobustBench-style): as it is;
- otherwise, when its last layer is an `nn.Linear` or a 1x1 `nn.Conv2d` (torchvision's ResNet `fc`,
  EfficientNet `classifier[1]`, ViT `heads.head`, ...): the features are the input of that layer, captured
  by a forward hook while the model runs unchanged; a 1x1 convolution becomes the equivalent linear layer
  (applied per position, so a global average pool after it still commutes).
Every model is then probed once, at load, on one batch of random images: the features must be 2-D with
the classifier's input width, and `classifier(features)` must equal the model's own output, else a
`ContractError` says what was found and how to fix it (a softmax or temperature after the last layer, an
unpooled `forward_features`, an input size the model cannot take).

Models take images in [0, 1]; `normalize` ("imagenet", "cifar10", "cifar100" or "MEAN,STD") adds the
standardisation a model trained on normalised input expects.

Compressed copies come as the unpruned network's function plus the copy's plain state dict: with
`structure="from-weights"` the network is first made what the tensors say (`rebuilt_from_weights`: layers
narrowed to a channel-pruned copy's widths, torch.ao FX int8 where the tensors are quantized), so nothing
but tensors is ever read from the file. A file that still does not fit gets one line with the likely fix.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from compute import quantize
from compute.checkpoint import read_state_dict
from compute.models import structure as layer_widths
from compute.models.base import ContractError, Normalize, check_contract

# Per-channel (mean, std) of the usual conventions: ImageNet's (torchvision, timm), and the true pixel
# statistics of the CIFAR training sets (not the often copied CIFAR-10 std 0.2023, 0.1994, 0.2010).
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
PROBE_BATCH = 2
# How a module:function model's architecture is completed before its weights load: "from-weights" rebuilds
# what the saved tensors say (layers as narrow as theirs, int8 layers where they are quantized).
FROM_WEIGHTS = "from-weights"
STRUCTURES = (FROM_WEIGHTS,)


def parse_normalize(text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """'imagenet' | 'cifar10' | 'cifar100' | 'm,s' | 'mr,mg,mb,sr,sg,sb' -> (mean, std), three values each."""
    if text in NORMALIZATIONS:
        return NORMALIZATIONS[text]
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) == 2:
        values = (values[0],) * 3 + (values[1],) * 3
    if len(values) != 6 or any(v <= 0 for v in values[3:]):
        raise ValueError(f"--normalize must be {', '.join(NORMALIZATIONS)}, or MEAN,STD as 2 or 6 numbers "
                         f"(stds > 0), got {text!r}")
    return values[:3], values[3:]


class TimmContract(nn.Module):
    """A timm model seen through the contract: pooled pre-logits features, timm's own classifier."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        classifier = model.get_classifier()
        if not isinstance(classifier, nn.Linear):
            raise ContractError(f"{name}: timm's get_classifier() is {type(classifier).__name__}, not an "
                                "nn.Linear; create the model with num_classes >= 2 (num_classes=0 removes "
                                "the classifier)")
        self.classifier = classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


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
        last.register_forward_hook(self._capture)

    def _capture(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        self._captured = inputs[0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.model(x)
        captured, self._captured = self._captured, None
        if captured is None:
            raise ContractError(f"{self.name}: its last layer did not run in forward(x)")
        return captured.mean(dim=(2, 3)) if captured.dim() == 4 else captured.flatten(1)

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


def is_timm(model: nn.Module) -> bool:
    return callable(getattr(model, "forward_head", None)) and callable(getattr(model, "get_classifier", None))


@torch.no_grad()
def probe(wrapped: nn.Module, own_forward: Any, name: str, image_size: int) -> None:
    """Run one random batch: features must be (N, D) with D = classifier width, and classifier(features)
    must equal the model's own output (`own_forward(x)`); else a ContractError saying what was found."""
    shape = (PROBE_BATCH, 3, image_size, image_size)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    x = x.to(next(iter(wrapped.parameters()), x).device)
    training = wrapped.training
    wrapped.eval()
    try:
        features = wrapped.forward_features(x)
        output = own_forward(x)
    except ContractError:
        raise
    except Exception as error:  # a user model may fail with anything on an input it cannot take
        raise ContractError(f"{name} failed on a probe batch of shape {shape} ({type(error).__name__}: "
                            f"{error}); does it take {image_size}x{image_size} RGB images? (--image-size / "
                            "the dataset sets the size)") from error
    finally:
        wrapped.train(training)
    classifier = wrapped.classifier
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        found = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ContractError(f"{name}.forward_features returned {found}, expected (N, D): the pooled vector the "
                            "classifier takes, not a feature map (timm's forward_features is unpooled; "
                            "pool it, e.g. return forward_head(x, pre_logits=True))")
    if features.shape[1] != classifier.in_features:
        raise ContractError(f"{name}.forward_features gives {features.shape[1]} features, its classifier takes "
                            f"{classifier.in_features}: they must be the classifier's input")
    expected = classifier(features).float()
    if not isinstance(output, torch.Tensor) or output.numel() != expected.numel():
        found = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ContractError(f"{name}'s output is {found}, classifier(features) is {tuple(expected.shape)}: "
                            "the model must return the logits of its classifier")
    difference = float((output.float().reshape(expected.shape) - expected).abs().max())
    tolerance = 1e-3 * (1.0 + float(expected.abs().max()))
    if not difference <= tolerance:
        raise ContractError(f"{name}: its output differs from classifier(features) by up to {difference:.3g} "
                            "(something follows the last linear layer, e.g. a softmax, a temperature or a "
                            "pooling other than global average); add forward_features(x) returning the "
                            "classifier's input and a classifier nn.Linear whose output is the model's")


def as_contract(model: nn.Module, name: str = "model", last_layer: str | None = None,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                image_size: int = 32) -> nn.Module:
    """`model` behind the forward_features / classifier contract (unchanged when it already meets it),
    probed once on `image_size` x `image_size` images.

    `last_layer` names the output layer when registration order does not end with it.
    """
    own_forward = model.forward
    if is_timm(model) and last_layer is None:
        wrapped = TimmContract(model, name)
    elif callable(getattr(model, "forward_features", None)) and isinstance(getattr(model, "classifier", None),
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
    check_contract(wrapped, name)
    probe(wrapped, own_forward, name, image_size)
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError("give both mean and std, or neither")
        wrapped = Normalized(wrapped, mean, std)
    return wrapped.eval()


def is_factory(value: Any) -> bool:
    """Whether `value` may build a model: a Python function or an nn.Module class, never a builtin (os:system,
    builtins:eval) or another callable object, whose call with no arguments could do anything."""
    return inspect.isfunction(value) or inspect.isclass(value) and issubclass(value, nn.Module)


def load_user_model(spec: str, checkpoint: str | None = None, *, last_layer: str | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    normalize: str | None = None, image_size: int = 32, structure: str | None = None) -> nn.Module:
    """Import `package.module:function`, call it, load `checkpoint` into the result, wrap it into the contract.

    The module must be importable (on PYTHONPATH or installed); the function takes no arguments.
    `normalize` names the input standardisation (see `parse_normalize`); it excludes mean/std.
    `structure="from-weights"`: the function builds the unpruned float network and `rebuilt_from_weights`
    makes it what the checkpoint's tensors say before they load (a channel-pruned or int8 copy).
    """
    if structure not in (None, *STRUCTURES):
        raise ValueError(f"structure {structure!r} is unknown; known: {', '.join(STRUCTURES)}")
    if normalize is not None:
        if mean is not None or std is not None:
            raise ValueError("give normalize or mean/std, not both")
        mean, std = parse_normalize(normalize)
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"model spec must look like 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for model {spec!r} ({error}): the module must be "
                         f"importable from the working directory ({Path.cwd()}) or a directory on PYTHONPATH "
                         f"(now {os.environ.get('PYTHONPATH') or 'unset'}); e.g. run from the directory that "
                         f"holds {module_name.split('.')[0]}.py, or PYTHONPATH=DIR python -m compute ...") from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{module_name!r} has no callable {attribute!r} (model spec {spec!r})")
    if not is_factory(factory):
        raise ValueError(f"model spec {spec!r} names a {type(factory).__name__}, not a function or an nn.Module "
                         "class that builds the model; it is not called")
    model = _called(factory, spec)
    if not isinstance(model, nn.Module):
        raise ContractError(f"{spec}() returned {type(model).__name__}, not a torch nn.Module")
    if checkpoint is not None:
        with quantize.quiet():  # int8 tensors load through torch's deprecated TypedStorage
            state = read_state_dict(checkpoint)
        if structure == FROM_WEIGHTS:
            model = rebuilt_from_weights(model, state, f"checkpoint {checkpoint}", image_size)
        _load_weights(model, state, f"checkpoint {checkpoint}", spec, structure)
    return as_contract(model, name=spec, last_layer=last_layer, mean=mean, std=std, image_size=image_size)


def _called(factory: Any, spec: str) -> Any:
    """`factory()`; anything it raises becomes one ValueError line naming the function (and, for a file
    torch refuses to unpickle, how to save it so that it loads)."""
    try:
        return factory()
    except Exception as error:  # user code may raise anything; the CLI prints one line
        lines = str(error).strip().splitlines()
        message = f"{spec}() raised {type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            message += (" (the file it loads holds pickled modules, as torch_pruning.state_dict and "
                        "torch.save(model) write: save model.state_dict() instead, and bring it with --weights "
                        f"FILE --structure {FROM_WEIGHTS} and a function that builds the unpruned network)")
        raise ValueError(message) from error


def _declared_widths(module: nn.Module, name: str, state: Mapping[str, Any]) -> list[int] | None:
    """The widths (compute.models.structure.widths) the saved tensors give layer `name`, None when the file
    has no weight for it."""
    weight = state.get(f"{name}.weight")
    if not isinstance(weight, torch.Tensor):
        weight = state.get(f"{name}.running_mean")
    if not isinstance(weight, torch.Tensor) or weight.dim() == 0:
        return None
    if isinstance(module, nn.Conv2d) and weight.dim() == 4:
        depthwise = module.groups == module.in_channels == module.out_channels and module.groups > 1
        return [int(weight.shape[0]), int(weight.shape[0] if depthwise else weight.shape[1])]
    if isinstance(module, nn.Linear) and weight.dim() == 2:
        return [int(weight.shape[0]), int(weight.shape[1])]
    if isinstance(module, nn.BatchNorm2d):
        return [int(weight.shape[0])]
    return None


def rebuilt_from_weights(model: nn.Module, state: Mapping[str, Any], what: str, image_size: int = 32) -> nn.Module:
    """`model` (the unpruned float network) made into what the saved tensors `state` describe: each
    convolution, linear layer and batch norm as wide as its saved weight (a channel-pruned copy, e.g. by
    Torch-Pruning, saved as its plain state dict), then, when the tensors are quantized, converted by
    torch.ao's FX int8 flow as they say (compute.quantize.rebuild_fx). Only tensors are read, never code."""
    spec = {}
    for name, module in model.named_modules():
        current = layer_widths.widths(module)
        declared = _declared_widths(module, name, state) if current is not None else None
        if declared is not None and declared != current:
            spec[name] = declared
    try:
        layer_widths.narrow(model, spec)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from error
    if any(isinstance(tensor, torch.Tensor) and tensor.is_quantized for tensor in state.values()):
        model = quantize.rebuild_fx(model, state, image_size)
    return model


def _load_weights(model: nn.Module, state: Mapping[str, Any], what: str, spec: str, structure: str | None) -> None:
    """`model.load_state_dict(state)`; a file that does not fit gets one line: what differs (a few keys and
    shapes, not torch's full list) and the likely fix."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    resized = [(key, tuple(state[key].shape), tuple(expected[key].shape)) for key in state
               if key in expected and isinstance(state[key], torch.Tensor) and isinstance(expected[key], torch.Tensor)
               and tuple(state[key].shape) != tuple(expected[key].shape)]
    if missing or unexpected or resized:
        found = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}" if unexpected else "",
            "other shapes: " + ", ".join(f"{k} {a} in the file, {b} in the model" for k, a, b in resized[:2])
            if resized else "") if part)
        raise ValueError(f"{what} does not fit {spec}(): {found}{_fix(state, resized, structure)}")
    try:
        with quantize.quiet():
            model.load_state_dict(state)
    except RuntimeError as error:
        lines = str(error).strip().splitlines()
        raise ValueError(f"{what} does not fit {spec}(): {lines[-1].strip() if lines else error}"
                         f"{_fix(state, resized, structure)}") from error


def _fix(state: Mapping[str, Any], resized: Sequence[tuple[str, tuple, tuple]], structure: str | None) -> str:
    """The likely fix of a file that does not load, from what it holds ('' when none is known)."""
    if any(key.endswith(("_orig", "_mask")) for key in state):
        return ("; the file holds weight_orig and weight_mask: call torch.nn.utils.prune.remove(module, 'weight') "
                "on every pruned layer before saving the state dict")
    quantized = any(isinstance(tensor, torch.Tensor) and tensor.is_quantized for tensor in state.values())
    if quantized and structure != FROM_WEIGHTS:
        return (f"; this is a quantized state dict: give the function that builds the float network with "
                f"--structure {FROM_WEIGHTS} (structure = \"{FROM_WEIGHTS}\" in a models file), which converts it "
                "with torch.ao FX int8 as the tensors say (README, int8)")
    if quantized:
        return ("; this quantized state dict is not what torch.ao's FX flow makes of the function's network with "
                "the default x86 qconfig (prepare_fx on the model in eval mode, convert_fx): quantize it that way "
                "(README, int8)")
    narrower = any(len(a) == len(b) and all(x <= y for x, y in zip(a, b, strict=True)) for _, a, b in resized)
    if narrower and structure != FROM_WEIGHTS:
        return (f"; the tensors are narrower than the model: a structurally pruned model (e.g. Torch-Pruning) needs "
                f"--structure {FROM_WEIGHTS} (structure = \"{FROM_WEIGHTS}\" in a models file), which narrows "
                "the layers to the saved tensors")
    return ""


ROBUSTBENCH_DIR = "models"  # where RobustBench downloads its models, relative to the working directory
ROBUSTBENCH_INSTALL = "pip install robustbench==1.1.1 (it pins timm==1.0.9, replacing the timm of requirements-optional.txt)"


def load_robustbench(name: str, dataset: str = "cifar10", threat_model: str = "corruptions",
                     model_dir: str | Path = ROBUSTBENCH_DIR) -> nn.Module:
    """A RobustBench model zoo entry (downloaded into `model_dir` by RobustBench), behind our contract.

    RobustBench models take [0, 1] images and normalise inside, as ours do. `threat_model` defaults to the
    common-corruptions leaderboard, the one this tool studies.
    """
    try:
        from robustbench.utils import load_model
    except ImportError as error:
        raise ValueError("RobustBench models need the optional robustbench package, which prunescope does not "
                         f"install: {ROBUSTBENCH_INSTALL}") from error
    model = load_model(model_name=name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
    return as_contract(model, name=f"RobustBench {dataset}/{threat_model} model {name!r}",
                       image_size=224 if dataset == "imagenet" else 32)
