"""int8 post-training static quantization of a model's feature extractor, on CPU.

`quantize` turns `model.body` (everything between the normalisation and the classifier) into an int8
network with PyTorch's FX graph mode: batch norms folded into the convolutions, per-channel symmetric
int8 weights, per-tensor uint8 activations whose ranges are calibrated on training images (the backend's
default qconfig). The normalisation and the final linear layer stay float, and the quantized body ends in
a dequantize, so `forward_features` returns the dequantized features and the geometry (angles, norms,
margins against a float classifier) is computed from exactly what the int8 network produced.

A quantized checkpoint is the float architecture (plus any channel `structure`), a `quantization` record
(`SPEC`) and the int8 state dict (quantized tensors load with torch.load(weights_only=True)). `rebuild`
converts a freshly built model the same way without calibrating, so the saved scales and weights load
into it. Quantized kernels run on CPU only.

torch.ao.quantization is deprecated in favour of torchao's PT2E flow but is what torch 2.14 ships; its
deprecation warnings are silenced here, the one place it is used.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.ao.quantization import get_default_qconfig_mapping, quantize_fx

from compute import device as devices
from store import vocabulary

BACKEND = "x86"  # fbgemm + onednn kernels; per-channel int8 weights in its default qconfig
SPEC: Mapping[str, str] = {"method": "int8", "backend": BACKEND}
METHODS = vocabulary.QUANTIZATIONS
CALIBRATION = 512  # training images that calibrate the activation ranges unless a study or flag says otherwise
CPU = torch.device("cpu")
# Warnings torch.ao raises on every use since it was deprecated (the API itself works in torch 2.14).
_DEPRECATION_MESSAGES = (".*torch.ao.quantization is deprecated", ".*reduce_range will be deprecated",
                         ".*quantized tensor creation functions", ".*TypedStorage is deprecated",
                         ".*must run observer before calling calculate_qparams")  # rebuild: scales come from the file


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch.ao's deprecation warnings off (they repeat on every convert and load), the rest untouched."""
    with warnings.catch_warnings():
        for message in _DEPRECATION_MESSAGES:
            warnings.filterwarnings("ignore", message=message)
        yield


def is_quantized(model: nn.Module) -> bool:
    """Whether any of the model's tensors is a quantized tensor (the model then runs on CPU only)."""
    return any(tensor.is_quantized for tensor in model.state_dict().values() if isinstance(tensor, torch.Tensor))


def device_for(model: nn.Module, device: torch.device) -> torch.device:
    """Where `model` runs: on CPU when it is quantized (int8 kernels are CPU-only), else on `device`."""
    return CPU if is_quantized(model) else device


def _prepared(model: nn.Module, backend: str) -> nn.Module:
    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(f"quantization backend {backend!r} is not available here; this torch has "
                         f"{', '.join(torch.backends.quantized.supported_engines)}")
    torch.backends.quantized.engine = backend
    example = (torch.zeros(1, 3, 32, 32),)  # tracing is symbolic: any image size gives the same graph
    return quantize_fx.prepare_fx(model.body.cpu().eval(), get_default_qconfig_mapping(backend), example)


@torch.no_grad()
def quantize(model: nn.Module, images: np.ndarray, batch_size: int = 64) -> nn.Module:
    """`model` (in place, now on CPU) with its body quantized to int8, activation ranges calibrated on
    `images` (uint8 (N, H, W, 3) training images); the normalisation and classifier stay float."""
    if len(images) == 0:
        raise ValueError("quantize: calibration needs at least one training image")
    model = model.cpu().eval()
    with quiet():
        body = _prepared(model, BACKEND)
        for start in range(0, len(images), batch_size):
            body(model.normalize(devices.to_input(images[start:start + batch_size], CPU)))
        model.body = quantize_fx.convert_fx(body)
    return model


def rebuild_fx(model: nn.Module, state: Mapping[str, Any], image_size: int = 32) -> nn.Module:
    """A user's float network (in eval mode: batch norms fold) converted by torch.ao's FX flow as its saved
    int8 state dict `state` says, without calibration, so that the saved weights and scales load: layers
    whose saved weight is float stay float (the final linear layer, which the geometry needs float), the
    rest get the backend's default qconfig (`get_default_qconfig_mapping`), as the README's recipe makes them."""
    mapping = get_default_qconfig_mapping(BACKEND)
    for name, module in model.named_modules():
        weight = state.get(f"{name}.weight")
        if isinstance(module, nn.Conv2d | nn.Linear) and isinstance(weight, torch.Tensor) and not weight.is_quantized:
            mapping.set_module_name(name, None)
    torch.backends.quantized.engine = BACKEND
    example = (torch.zeros(1, 3, image_size, image_size),)
    try:
        with quiet():
            return quantize_fx.convert_fx(quantize_fx.prepare_fx(model.cpu().eval(), mapping, example))
    except Exception as error:  # FX tracing fails on control flow that depends on the input, with many types
        lines = str(error).strip().splitlines()
        raise ValueError(f"the network cannot be converted by torch.ao's FX flow ({type(error).__name__}: "
                         f"{lines[0] if lines else ''}); an int8 model comes in as prepare_fx/convert_fx make it") from error


def rebuild(model: nn.Module, spec: Mapping[str, Any]) -> nn.Module:
    """A float model converted as `spec` (a checkpoint's `quantization` record) says, without
    calibration: the structure its saved int8 state dict loads into. ValueError naming what is unknown."""
    if spec.get("method") not in METHODS:
        raise ValueError(f"quantization method {spec.get('method')!r} is unknown; known: {', '.join(METHODS)}")
    model = model.cpu().eval()
    with quiet():
        model.body = quantize_fx.convert_fx(_prepared(model, str(spec.get("backend", BACKEND))))
    return model
