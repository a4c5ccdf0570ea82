"""Extraction overhead: plain inference vs extraction (features + geometry + Parquet) on the same images.

Both runs see the same uint8 arrays (the digits test set under 20 settings, corruptions made beforehand
so neither side pays for them) on the same device, and the same model: the demo's dense checkpoint when
data/demo exists, else a freshly initialised small_cnn (identical cost). Goal: ratio <= 1.10.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from compute import checkpoint, datasets, models
from compute import device as devices
from compute.cards import ExtractModel
from compute.datasets.base import Dataset
from compute.extract import extract
from compute.train import channel_stats
from store import reader, writer

SETTINGS = 20
REPEATS = 3
DEMO_CHECKPOINT = Path("data/demo/checkpoints/small_cnn-dense-s0.pt")


def demo_model(num_classes: int, images: np.ndarray) -> tuple[torch.nn.Module, str]:
    if DEMO_CHECKPOINT.exists():
        return checkpoint.load(DEMO_CHECKPOINT)[0], str(DEMO_CHECKPOINT)
    mean, std = channel_stats(images)
    return models.build("small_cnn", num_classes, mean, std).eval(), "fresh small_cnn (no data/demo store)"


@torch.no_grad()
def plain_inference(model: torch.nn.Module, arrays: list[np.ndarray], device: torch.device, batch: int) -> float:
    start = time.perf_counter()
    for images in arrays:
        for i in range(0, len(images), batch):
            with devices.autocast(device):
                logits = model(devices.to_input(images[i:i + batch], device))
            logits.argmax(dim=1).cpu()
    return time.perf_counter() - start


def extraction(model: torch.nn.Module, data: Dataset, arrays: list[np.ndarray], device: torch.device,
               batch: int) -> float:
    names = [f"setting{i}" for i in range(1, len(arrays))]
    lookup = {name: arrays[i + 1] for i, name in enumerate(names)}
    with tempfile.TemporaryDirectory() as root:
        writer.init_store(root, dataset=data.name, class_names=data.class_names, images=arrays[0],
                          labels=data.test.labels, corruptions=names, severities=[1])
        start = time.perf_counter()
        extract(root, [ExtractModel("bench", model)], data.test, data.num_classes, names, [1], device=device,
                batch_size=batch, load_corrupted=lambda name, severity: lookup[name], progress=False)
        elapsed = time.perf_counter() - start
        rows = sum(p["rows"] for p in reader.complete_partitions(root))
        size = sum(p["bytes"] for p in reader.complete_partitions(root))
    extraction.bytes_per_row = size / rows
    return elapsed


def main() -> None:
    device = devices.pick("auto")
    data = datasets.load("digits")
    model, source = demo_model(data.num_classes, data.train.images)
    model = devices.prepare_model(model, device).eval()
    rng = np.random.default_rng(0)
    arrays = [data.test.images] + [
        np.clip(data.test.images.astype(np.int16) + rng.integers(-20, 21, data.test.images.shape), 0, 255)
        .astype(np.uint8) for _ in range(SETTINGS - 1)]
    images = sum(len(a) for a in arrays)
    batch = 256
    plain_inference(model, arrays[:2], device, batch)  # warm-up
    plain, extract_times = [], []
    for _ in range(REPEATS):
        plain.append(plain_inference(model, arrays, device, batch))
        extract_times.append(extraction(model, data, arrays, device, batch))
    p, e = statistics.median(plain), statistics.median(extract_times)
    print(f"model: {source}; device: {device}; {images} images ({SETTINGS} partitions x {len(arrays[0])}), "
          f"batch {batch}, median of {REPEATS}")
    print(f"{'plain inference':<28}{p:8.3f} s {images / p:10.0f} img/s")
    print(f"{'extraction (geometry+parquet)':<28}{e:8.3f} s {images / e:10.0f} img/s")
    print(f"ratio extraction / plain inference: {e / p:.3f}  (goal <= 1.10)")
    print(f"store bytes per prediction row: {extraction.bytes_per_row:.1f}")
