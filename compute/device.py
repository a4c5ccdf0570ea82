"""Where compute runs: CUDA when present (bf16 autocast, channels_last, pinned memory), else CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


def pick(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when available; `cpu`/`cuda`/`cuda:1` are taken as given (and checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


def to_input(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1] on `device`; the uint8 crosses the bus, not float."""
    batch = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if device.type == "cuda" and batch.device.type == "cpu":
        batch = batch.pin_memory().to(device, non_blocking=True)
    x = batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x.contiguous()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing on CPU (CPU bf16 is slower than float32 on most machines)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batches(count: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most `batch_size` covering range(count): how images are fed to the device."""
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))
