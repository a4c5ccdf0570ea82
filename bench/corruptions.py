"""Throughput of our corruptions against the `imagecorruptions-imaug` package at 32, 64 and 224 px.

For each resolution, `main()` prints images per processor-second for every corruption (each over
severities 1-5) on the same images: ours over all 19, the package over the 15 common ones it shares with
us (its `corrupt(image, severity, corruption_name)` works one HxWx3 uint8 image at a time), and the ratio
side by side. The images are digits test images resized with Pillow's bilinear filter (as Tiny-ImageNet
and ImageNet images were). Both run in one thread: the package is single-threaded numpy/OpenCV, and one
thread each is the fair comparison (and the robust one on a shared machine). Each side gets a warm-up
pass first (our sparse operators, FFT kernels and frost textures are built once per process and size;
the package's glass blur is compiled by numba on first use), which a long job amortises. Times are
processor time of this process (all its threads, so a library that spreads work over threads is not
flattered), the best of three runs: on a shared machine wall-clock time mostly measures the other
processes. The load average is printed beside the figures.

The package applies ImageNet-C's constants (scaled to the image size) at every size, ours the constants
of the nearest published resolution, so the work per image differs a little at 32 and 64 px; what is
compared is the cost of corrupting an image of that size. At 64 and 224 px our figures include the
quality-85 JPEG storage step of Tiny-ImageNet-C and ImageNet-C, which the package does not do.

The package is a benchmark-only dependency (requirements-bench.txt); without it only our figures print.

    python -m bench corruptions
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from compute import corruptions, datasets
from store import vocabulary

# (side in pixels, images corrupted by us in one batch, of those how many go through the package)
SIZES = ((32, 256, 20), (64, 64, 8), (224, 8, 2))
REPEATS = 3  # each timing is the best of this many runs: the least disturbed by other processes


def _timed(run: Callable[[], object]) -> float:
    """Processor seconds of `run` (this process, all its threads), the best of REPEATS runs."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def _ours(images: np.ndarray, name: str) -> float:
    """Seconds to corrupt `images` at all five severities, after a warm-up pass."""
    def run() -> None:
        for severity in vocabulary.SEVERITIES:
            corruptions.corrupt(images, name, severity, batch_size=len(images))
    run()
    return _timed(run)


def _reference(images: np.ndarray, name: str, corrupt: Callable[..., np.ndarray]) -> float:
    def run() -> None:
        for severity in vocabulary.SEVERITIES:
            for image in images:
                corrupt(image, severity=severity, corruption_name=name)
    corrupt(images[0], severity=1, corruption_name=name)
    return _timed(run)


def _images(size: int, count: int) -> np.ndarray:
    digits = datasets.load("digits").test.images[:count]
    if size == digits.shape[1]:
        return digits
    return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR)) for image in digits])


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _table(size: int, count: int, reference_count: int, reference_corrupt: Callable[..., np.ndarray] | None) -> None:
    images = _images(size, count)
    per_setting = len(vocabulary.SEVERITIES)
    print(f"\n{size}x{size} px: images per processor-second (one thread, best of {REPEATS}) over severities 1-5; "
          f"ours on {count} images, imagecorruptions-imaug on the first {reference_count}; {_load()}")
    print(f"{'corruption':<18} {'ours':>10} {'package':>10} {'ratio':>7}")
    ours_seconds = {name: _ours(images, name) for name in corruptions.NAMES}
    reference_seconds: dict[str, float] = {}
    for name in corruptions.NAMES:
        ours_rate = per_setting * count / ours_seconds[name]
        if reference_corrupt is not None and name in vocabulary.COMMON_CORRUPTIONS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference_seconds[name] = _reference(images[:reference_count], name, reference_corrupt)
            reference_rate = per_setting * reference_count / reference_seconds[name]
            print(f"{name:<18} {ours_rate:>10.0f} {reference_rate:>10.1f} {ours_rate / reference_rate:>6.1f}x")
        else:
            print(f"{name:<18} {ours_rate:>10.0f} {'':>10} {'':>7}")
    all_rate = per_setting * count * len(corruptions.NAMES) / sum(ours_seconds.values())
    print(f"{'all 19 x 5':<18} {all_rate:>10.0f}")
    if reference_seconds:
        common_rate = per_setting * count * len(reference_seconds) / sum(
            ours_seconds[name] for name in reference_seconds)
        reference_rate = per_setting * reference_count * len(reference_seconds) / sum(reference_seconds.values())
        print(f"{'common 15 x 5':<18} {common_rate:>10.0f} {reference_rate:>10.1f} "
              f"{common_rate / reference_rate:>6.1f}x   ({_load()})")


def main(sizes: tuple[int, ...] | None = None) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from imagecorruptions import corrupt as reference_corrupt
        except ImportError:
            reference_corrupt = None
            print("imagecorruptions-imaug is not installed (pip install -r requirements-bench.txt): "
                  "printing our throughput only")
        for size, count, reference_count in SIZES:
            if sizes is None or size in sizes:
                _table(size, count, reference_count, reference_corrupt)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
