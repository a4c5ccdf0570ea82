"""Bytes per prediction row, store format 1 against format 2, side by side on the same geometry.

Real geometry, demo-size files: a small_cnn trained for EPOCHS epochs on the embedded digits set, run
over its 540 test images clean and under SETTINGS (one Parquet file per setting, as the store writes
them); at 1,000 classes the same features go through a random 1,000-class head with bias (labels are
the digits, so the true class is rarely among the top-k and most rows keep k + 1 classes: the worst
case). Then testkit.synthetic's rows at 10,000 samples per file (the bench queries size). Both formats are
written by the store's own writer (zstd), format 1 by testkit.synthetic.format1_table. Targets (issue 10):
format 2 <= 100 B/row at 10 classes (format 1: 156.5 on the demo store), <= 150 B/row at 1,000 classes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from compute import corruptions, datasets, geometry, models, train
from compute import device as devices
from store import layout, writer
from testkit import synthetic

EPOCHS = 2
SETTINGS = (("clean", 0), ("gaussian_noise", 3), ("contrast", 5), ("fog", 1), ("pixelate", 3))
SYNTHETIC_SAMPLES = 10_000
TARGETS = {10: 100.0, 1000: 150.0}


def bytes_per_row(partitions: list[dict[str, np.ndarray]], num_classes: int) -> tuple[float, float]:
    """(format 1, format 2) bytes per row of these partitions (format-1 columns each), files as stored."""
    sizes = [0, 0]
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index, columns in enumerate(partitions):
            table_v1 = synthetic.format1_table(columns, num_classes)
            table_v2, _ = synthetic.partition(columns)
            sizes[0] += writer.write_parquet(root, table_v1, root / f"v1-{index}.parquet")
            sizes[1] += writer.write_parquet(root, table_v2, root / f"v2-{index}.parquet")
            rows += len(columns["label"])
    return sizes[0] / rows, sizes[1] / rows


def _columns(g: geometry.Geometry) -> dict[str, np.ndarray]:
    return {name: getattr(g, name).numpy() for name in (*geometry.SCALAR_FIELDS, "angles", "logits")}


def real_partitions() -> tuple[list[dict], list[dict]]:
    """Format-1 columns per setting of a briefly trained digits model: its own 10-class head, and a random
    1,000-class head on the same features."""
    device = torch.device("cpu")
    data = datasets.load("digits")
    mean, std = train.channel_stats(data.train.images)
    torch.manual_seed(0)
    model = models.build("small_cnn", data.num_classes, mean, std)
    train.train(model, data.train, train.TrainConfig(epochs=EPOCHS), device, description="store_size: train")
    model.eval()
    generator = torch.Generator().manual_seed(1)
    labels = torch.from_numpy(data.test.labels.astype(np.int64))
    ten, thousand = [], []
    for name, severity in SETTINGS:
        images = data.test.images if name == "clean" else corruptions.corrupt(data.test.images, name, severity)
        with torch.no_grad():
            features = model.forward_features(devices.to_input(torch.from_numpy(images), device)).float()
        if not thousand:
            head = torch.randn(1000, features.shape[1], generator=generator) / features.shape[1] ** 0.5
            bias = torch.randn(1000, generator=generator) * 0.1
        ten.append(_columns(geometry.compute(features, model.classifier.weight.detach(),
                                             model.classifier.bias.detach(), labels)))
        thousand.append(_columns(geometry.compute(features, head, bias, labels)))
    return ten, thousand


def synthetic_partitions(num_classes: int) -> list[dict]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, num_classes, SYNTHETIC_SAMPLES)
    norms, biases = synthetic.classifier(rng, num_classes)
    return [synthetic.prediction_columns(rng, labels, num_classes, 0.8, norms, biases) for _ in range(2)]


def main() -> None:
    torch.set_num_threads(2)
    print(f"load average {os.getloadavg()[0]:.2f}; per-class rule {layout.PerClass()}", flush=True)
    ten, thousand = real_partitions()
    rows = [("digits small_cnn, 540 rows/file", 10, ten), ("same features, random head", 1000, thousand)]
    rows += [(f"synthetic, {SYNTHETIC_SAMPLES:,} rows/file", c, synthetic_partitions(c)) for c in (10, 1000)]
    print(f"{'data':<34} {'classes':>7} {'format 1 B/row':>15} {'format 2 B/row':>15} {'ratio':>7} {'target':>8}")
    for label, num_classes, partitions in rows:
        v1, v2 = bytes_per_row(partitions, num_classes)
        verdict = "met" if v2 <= TARGETS[num_classes] else "MISSED"
        print(f"{label:<34} {num_classes:>7} {v1:>15.1f} {v2:>15.1f} {v1 / v2:>6.1f}x "
              f"{'<= ' + str(int(TARGETS[num_classes])):>8} {verdict}", flush=True)


if __name__ == "__main__":
    main()
