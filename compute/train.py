"""Training: SGD with momentum, cosine learning rate, random-crop (+ optional flip) augmentation.

Data stay uint8 in memory and are augmented on the device in batches. Callbacks let pruning methods act
during training (gradual magnitude pruning, weight rewinding) without their own loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from compute import device as devices
from compute.datasets.base import ImageSet


def _field(default: Any, help: str, least: str = "non-negative") -> Any:
    """A schedule field: its default, the --help text of its flag and what its values must be ("positive"
    or "non-negative"); `compute train`/`prune` generate their flags from these (commands._common)."""
    return field(default=default, metadata={"help": help, "least": least})


@dataclass(frozen=True)
class Schedule:
    """How a model is trained, all but the seed: the schedule of a run record (compute.runs) and the one
    place these names, defaults and meanings are written."""

    epochs: int = _field(10, "training epochs", "positive")
    batch_size: int = _field(64, "images per optimiser step", "positive")
    lr: float = _field(0.05, "peak learning rate (cosine schedule)", "positive")
    momentum: float = _field(0.9, "SGD momentum")
    weight_decay: float = _field(5e-4, "L2 weight decay")
    crop_padding: int = _field(2, "zero padding before the random crop (0: no crop)")
    flip: bool = _field(False, "random horizontal flips (off by default: a flipped digit is another digit)")


@dataclass(frozen=True)
class TrainConfig(Schedule):
    """Hyperparameters of one training run: a schedule and the seed of its shuffling and augmentation."""

    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, H, W, 3) images, in [0, 1] units (std never 0)."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return pixels.mean(axis=0).tolist(), np.maximum(pixels.std(axis=0), 1e-3).tolist()


def augment(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding (and horizontal flip), one draw per image, on x's device."""
    n, channels, height, width = x.shape
    if padding:
        padded = F.pad(x, (padding,) * 4)
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
        rows = (offsets[0][:, None] + torch.arange(height, device=x.device))[:, None, :, None]
        cols = (offsets[1][:, None] + torch.arange(width, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(channels, device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mask, x.flip(3), x)
    return x


StepCallback = Callable[[int, int], None]


def train(model: nn.Module, data: ImageSet, config: TrainConfig, device: torch.device,
          params: Iterable[nn.Parameter] | None = None, on_step: StepCallback | None = None,
          description: str = "train") -> list[float]:
    """Train in place; returns the mean loss per epoch. `on_step(step, total_steps)` runs after each step."""
    generator = torch.Generator().manual_seed(config.seed)
    model = devices.prepare_model(model, device)
    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total_steps = max(1, config.epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels)
    losses: list[float] = []
    step = 0
    with tqdm(total=total_steps, desc=description, unit="step", leave=False) as bar:
        for _ in range(config.epochs):
            model.train()
            order = torch.randperm(len(data), generator=generator)
            total, count = 0.0, 0
            for start in range(0, len(data), config.batch_size):
                index = order[start:start + config.batch_size]
                x = augment(devices.to_input(images[index], device), config.crop_padding, config.flip, generator)
                y = labels[index].to(device)
                with devices.autocast(device):
                    loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                if on_step is not None:
                    on_step(step, total_steps)
                total += loss.item() * len(index)
                count += len(index)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            losses.append(total / max(count, 1))
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, data: ImageSet, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Predicted class per sample."""
    model = devices.prepare_model(model, device).eval()
    preds = []
    for start in range(0, len(data), batch_size):
        with devices.autocast(device):
            logits = model(devices.to_input(data.images[start:start + batch_size], device))
        preds.append(logits.argmax(dim=1).cpu())
    return torch.cat(preds).numpy()


def accuracy(model: nn.Module, data: ImageSet, device: torch.device, batch_size: int = 256) -> float:
    return float((predict(model, data, device, batch_size) == data.labels).mean())
