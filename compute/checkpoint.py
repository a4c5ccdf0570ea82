"""Self-describing checkpoints: the weights plus everything needed to rebuild the model.

A checkpoint is a dict saved with torch.save:
    format, version, arch, num_classes, mean, std, dataset, hparams (dict), state_dict
    and, for compressed models, structure (layer widths that differ from the architecture's, after channel
    pruning: compute.models.structure) and quantization (compute.quantize.SPEC, for int8 models)
Loading rebuilds the architecture from the registry, narrows and quantizes it as those keys say, and
checks every tensor's shape, so a checkpoint that does not fit its architecture fails with a message
naming the tensor. Nothing in a checkpoint is code: it loads with torch.load(weights_only=True).

A checkpoint is bounded before anything is built from it (`bounded`, which every loader path goes through
by `load`: extraction, footprint, quantize, the dashboard's attribution): its file size and the parameter
count of the model it declares (architecture and structure, built on torch's meta device, which allocates
nothing) against MODEL_BUDGET, and the declared layers' shapes against the stored tensors' shapes. A
`structure` declaring layers 16,000 wide is refused in one line, not allocated.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compute import models, quantize
from compute.models import structure as layer_widths
from store import writer

FORMAT = "prunescope-checkpoint"
VERSION = 1
# Bytes one checkpoint's file, and the parameters and buffers of the model it declares, may take (a
# ResNet-50 takes 100 MB): a checkpoint declaring more is refused before anything is allocated.
MODEL_BUDGET = 1 << 30


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not match its architecture."""


def save(path: str | Path, model: nn.Module, *, arch: str, num_classes: int, mean, std, dataset: str,
         hparams: dict[str, Any], structure: dict[str, list[int]] | None = None,
         quantization: dict[str, str] | None = None) -> None:
    """Write atomically (temporary file, fsync, rename), so a crash never leaves half a checkpoint.

    `structure` defaults to the layer widths where `model` differs from a fresh `arch`; a quantized model
    (whose layers are no longer float convolutions) passes its float base's structure and `quantization`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if structure is None:
        structure = layer_widths.structure(model, models.build(arch, num_classes, mean, std))
    payload = {
        "format": FORMAT, "version": VERSION, "arch": arch, "num_classes": num_classes,
        "mean": list(map(float, mean)), "std": list(map(float, std)), "dataset": dataset,
        "hparams": hparams, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **({"structure": structure} if structure else {}),
        **({"quantization": dict(quantization)} if quantization else {}),
    }
    buffer = io.BytesIO()  # serialised first: torch.save on a full disk raises RuntimeError, write() an OSError
    torch.save(payload, buffer)
    with writer.atomically(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def read(path: str | Path, budget: int | None = None) -> dict[str, Any]:
    """The checkpoint's dict, validated for format; raises CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    budget = MODEL_BUDGET if budget is None else budget
    if size > budget:
        raise CheckpointError(f"checkpoint {path} is {size / 1e9:.1f} GB, more than the {budget / 1e9:.1f} GB "
                              "a model may take here")
    try:
        with quantize.quiet():  # int8 tensors load through torch's deprecated TypedStorage
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"checkpoint {path} is not a readable torch file: {torch_reason(error)}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        plain = isinstance(payload, dict) and any(isinstance(v, (dict, torch.Tensor)) for v in payload.values())
        hint = (": it looks like a plain state dict; extract it with --model package.module:function (a function "
                f"that builds the network) --weights {path}" if plain else "")
        raise CheckpointError(f"checkpoint {path} is not a prunescope checkpoint (no format={FORMAT!r} key){hint}")
    missing = {"arch", "num_classes", "mean", "std", "state_dict"} - payload.keys()
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}")
    return payload


def load(path: str | Path, budget: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on CPU, checkpoint metadata without the weights); `budget` bytes for its file and
    its declared model (default MODEL_BUDGET; a server passes less)."""
    payload = read(path, budget)
    bounded(payload, path, budget)
    try:
        model = models.build(payload["arch"], payload["num_classes"], payload["mean"], payload["std"])
        layer_widths.narrow(model, payload.get("structure", {}))
        if "quantization" in payload:
            quantize.rebuild(model, payload["quantization"])
    except ValueError as error:
        raise CheckpointError(f"checkpoint {path}: {error}") from error
    expected = model.state_dict()
    state = payload["state_dict"]
    _same_keys(expected, state, path, payload["arch"])
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"checkpoint {path}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                                  f"architecture {payload['arch']!r} expects {tuple(expected[key].shape)}")
    with quantize.quiet():
        model.load_state_dict(state)
    model.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta


def bounded(payload: dict[str, Any], path: str | Path, budget: int | None = None) -> None:
    """Refuse, before any layer is allocated, a checkpoint whose declared model (architecture, `num_classes`
    and `structure`, built on the meta device) does not fit its stored tensors' shapes or takes more than
    `budget` bytes; CheckpointError naming the file, the layer and what was declared against what is
    stored. Every loader path calls it through `load`."""
    budget = MODEL_BUDGET if budget is None else budget
    structure = payload.get("structure") or {}
    if not isinstance(structure, dict):
        raise CheckpointError(f"checkpoint {path}: structure is a {type(structure).__name__}, not a mapping "
                              "of layer names to widths")
    num_classes = payload["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= layer_widths.MAX_WIDTH:
        raise CheckpointError(f"checkpoint {path}: num_classes {num_classes!r} is not a whole number of classes "
                              f"from 1 to {layer_widths.MAX_WIDTH:,}")
    try:
        with torch.device("meta"):
            declared = models.build(payload["arch"], num_classes, payload["mean"], payload["std"])
            layer_widths.narrow(declared, structure)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path}: {error}") from error
    expected = declared.state_dict()
    state = payload["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: state_dict is a {type(state).__name__}, not a dict of tensors")
    if "quantization" not in payload:  # an int8 model's keys are its converted layers' (checked once built)
        _same_keys(expected, state, path, payload["arch"])
    for key, tensor in state.items():
        if key in expected and isinstance(tensor, torch.Tensor) and tuple(tensor.shape) != tuple(expected[key].shape):
            layer = key.rpartition(".")[0]
            if layer in structure:
                raise CheckpointError(f"checkpoint {path}: its structure declares layer {layer!r} as "
                                      f"{list(structure[layer])}, a tensor {key!r} of shape "
                                      f"{tuple(expected[key].shape)}; the stored one is {tuple(tensor.shape)}")
            raise CheckpointError(f"checkpoint {path}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                                  f"architecture {payload['arch']!r} expects {tuple(expected[key].shape)}")
    total = sum(tensor.numel() * tensor.element_size() for tensor in expected.values())
    if total > budget:
        raise CheckpointError(f"checkpoint {path}: architecture {payload['arch']!r} with its declared structure "
                              f"takes {total / 1e9:.1f} GB, more than the {budget / 1e9:.1f} GB a model may take "
                              "here")


def torch_reason(error: Exception, limit: int = 200) -> str:
    """Why torch.load refused a file, in one line without torch's advice: a file holding Python objects
    other than tensors is refused by weights_only loading, and torch's suggestion to load it with
    weights_only=False (running whatever code it holds) is never passed on, least of all to a visitor."""
    text = " ".join(str(error).split())
    if "Weights only load failed" in text:
        found = re.search(r"(Trying to load unsupported GLOBAL [^ ]+|Unsupported global: [^ ]+|"
                          r"WeightsUnpickler error: [^.]*)", text)
        detail = f" ({found.group(1)})" if found else ""
        return f"it holds Python objects other than tensors{detail}, which prunescope never loads"
    text = re.sub(r"[^.]*weights_only[^.]*\.?", "", text).strip() or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _same_keys(expected: dict[str, Any], state: dict[str, Any], path: str | Path, arch: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path} does not match architecture {arch!r}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")


# Where training scripts put the weights inside a saved dict (PyTorch examples, timm, Lightning, ours).
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "net", "model_state")
# Prefixes wrappers add to every key: DataParallel / DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights in a file as people save them: a plain state dict, or one nested under any of
    STATE_DICT_KEYS (at any depth, e.g. {'model': {'state_dict': ...}}), with DataParallel's `module.`
    (and torch.compile's `_orig_mod.`) prefixes removed. Raises ValueError naming the file and its keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or non-tensor files
        raise ValueError(f"checkpoint {path} is not a readable torch state dict: {torch_reason(error)}") from error
    for _ in range(4):  # nesting seen in practice is at most two levels deep
        if not isinstance(payload, dict):
            break
        nested = next((payload[key] for key in STATE_DICT_KEYS if isinstance(payload.get(key), dict)), None)
        if nested is None or _is_state_dict(payload):
            break
        payload = nested
    if not _is_state_dict(payload):
        keys = sorted(map(str, payload))[:10] if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"checkpoint {path} holds no state dict (a dict of tensors, possibly under "
                         f"{', '.join(STATE_DICT_KEYS)}); found: {keys}")
    state = {}
    for key, value in payload.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.removeprefix("module.").removeprefix("_orig_mod.")
        state[key] = value
    return state


def _is_state_dict(payload: Any) -> bool:
    return isinstance(payload, dict) and bool(payload) and all(isinstance(v, torch.Tensor) for v in payload.values())
