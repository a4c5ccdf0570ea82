"""End-to-end extraction throughput on a GPU, and its ratio to plain inference on the same device.

ResNet-18 over synthetic CIFAR-sized images (10,000) under clean + 19 corruptions x 5 severities: 960,000
images. End to end means what `python -m compute extract` does: corrupted images made on the GPU
(compute.corruptions.corrupt_tensor), features and geometry under bf16 autocast in channels_last, results
copied back once per partition, Parquet written on a background thread. Plain inference is the same
model's forward pass over as many images (uint8 from pinned host memory, same batch size), predictions
copied back once per pass: what any evaluation costs at least. The ratio is the price of everything
prunescope adds.

Without a CUDA device nothing is measured: a tiny CPU run of the same code path shows that it works.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from compute import corruptions, models
from compute import device as devices
from compute.cards import ExtractModel
from compute.datasets.base import ImageSet
from compute.extract import extract
from compute.worklist import settings
from store import vocabulary, writer

NUM_IMAGES = 10_000
BATCH_SIZE = 1024
CLASSES = 10


@dataclass(frozen=True)
class Result:
    """One measurement: images seen end to end, and seconds for extraction and for plain inference."""

    device: str
    images: int
    rows: int
    extract_s: float
    plain_s: float

    def lines(self) -> list[str]:
        return [f"device: {self.device}; {self.images} images ({self.rows} rows written)",
                f"{'plain inference':<34}{self.plain_s:9.2f} s {self.images / self.plain_s:12.0f} img/s",
                f"{'extraction end to end':<34}{self.extract_s:9.2f} s {self.images / self.extract_s:12.0f} img/s",
                f"ratio end-to-end time / plain inference time: {self.extract_s / self.plain_s:.2f}"]


def synthetic_images(count: int, seed: int = 0) -> ImageSet:
    """CIFAR-sized uint8 images with some spatial structure (upsampled noise) and random labels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    images = np.ascontiguousarray(coarse.repeat(4, axis=1).repeat(4, axis=2))
    return ImageSet(images, rng.integers(0, CLASSES, count).astype(np.int64))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def plain_inference(model: torch.nn.Module, images: np.ndarray, passes: int, device: torch.device,
                    batch_size: int) -> float:
    """Seconds for `passes` forward passes over `images`, predictions copied back once per pass."""
    host = torch.from_numpy(images)
    if device.type == "cuda":
        host = host.pin_memory()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(passes):
        predictions = []
        for begin in range(0, len(host), batch_size):
            x = devices.to_input(host[begin:begin + batch_size], device)
            with devices.autocast(device):
                predictions.append(model(x).argmax(dim=1))
        torch.cat(predictions).cpu()
    synchronize(device)
    return time.perf_counter() - start


def run(device: torch.device, num_images: int, corruption_names: Sequence[str], severities: Sequence[int],
        batch_size: int, arch: str = "resnet18") -> Result:
    """Extract a fresh model over synthetic images into a temporary store, then time plain inference."""
    test = synthetic_images(num_images)
    model = models.build(arch, CLASSES, (0.5,) * 3, (0.25,) * 3).eval()
    model = devices.prepare_model(model, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    plain_inference(model, test.images[:batch_size], 2, device, batch_size)  # warm-up: kernels, autotuning
    passes = len(settings(corruption_names, severities))
    with tempfile.TemporaryDirectory() as store:
        writer.init_store(store, dataset="synthetic", class_names=[str(c) for c in range(CLASSES)],
                          images=test.images, labels=test.labels, corruptions=corruption_names,
                          severities=severities)
        synchronize(device)
        start = time.perf_counter()
        summary = extract(store, [ExtractModel(arch, model)], test, CLASSES, corruption_names, severities,
                          device=device, batch_size=batch_size, progress=False)
        synchronize(device)
        extract_s = time.perf_counter() - start
    plain_s = plain_inference(model, test.images, passes, device, batch_size)
    return Result(str(device), passes * num_images, summary.rows, extract_s, plain_s)


def main() -> None:
    if torch.cuda.is_available():
        device = torch.device("cuda")
        print(f"GPU: {torch.cuda.get_device_name(device)}; ResNet-18, {NUM_IMAGES} synthetic CIFAR-sized images, "
              f"clean + {len(corruptions.NAMES)} corruptions x 5 severities, batch {BATCH_SIZE}")
        result = run(device, NUM_IMAGES, corruptions.NAMES, vocabulary.SEVERITIES, BATCH_SIZE)
    else:
        print("not measured: no CUDA device")
        print("CPU smoke run of the same code path (tiny, not a measurement):")
        result = run(torch.device("cpu"), 16, corruptions.NAMES[:1], (1,), 16)
    for line in result.lines():
        print(line)


if __name__ == "__main__":
    main()
