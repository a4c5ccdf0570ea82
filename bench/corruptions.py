"""Throughput of our corruptions against the `imagecorruptions-imaug` package, on the same images.

`main()` prints images per second for every corruption (each over severities 1-5): ours over all 19,
the package over the 15 common ones it shares with us (its `corrupt(image, severity, corruption_name)`
works one HxWx3 uint8 image at a time), and the ratio on those 15. Both run in one thread: the package
is single-threaded numpy/OpenCV, and one thread each is the fair comparison (and the robust one on a
shared 2-core machine). Each side gets a warm-up pass first (our sparse operators and frost textures
are built once per process; the package's glass blur is compiled by numba on first use), which a long
job amortises. Times are processor time of this process (all its threads, so a library that spreads
work over threads is not flattered), the best of three runs: on a shared machine wall-clock time
mostly measures the other processes. Images per processor-second is the throughput of one free core.
The package constants are the ImageNet-C ones, not CIFAR's, so the work per image
differs a little; what is compared is the cost of corrupting a 32x32 image.

The package is a benchmark-only dependency (requirements-bench.txt); without it only our figures print.

    python -c "import bench.corruptions as b; b.main()"
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from compute import corruptions, datasets

IMAGES = 256  # digits test images corrupted by us, in one batch per corruption and severity
REFERENCE_IMAGES = 20  # of those, how many go through the (ten times slower and more) package


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
        for severity in corruptions.SEVERITIES:
            corruptions.corrupt(images, name, severity, batch_size=len(images))
    run()
    return _timed(run)


def _reference(images: np.ndarray, name: str, corrupt: Callable[..., np.ndarray]) -> float:
    def run() -> None:
        for severity in corruptions.SEVERITIES:
            for image in images:
                corrupt(image, severity=severity, corruption_name=name)
    corrupt(images[0], severity=1, corruption_name=name)
    return _timed(run)


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images = datasets.load("digits").test.images[:IMAGES]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from imagecorruptions import corrupt as reference_corrupt
        except ImportError:
            reference_corrupt = None
            print("imagecorruptions-imaug is not installed (pip install -r requirements-bench.txt): "
                  "printing our throughput only")
        per_setting = len(corruptions.SEVERITIES)
        print(f"corruption throughput in images per processor-second (one thread, best of {REPEATS}) over "
              f"severities 1-5; ours on {len(images)} digits test images, imagecorruptions-imaug on the first "
              f"{REFERENCE_IMAGES}")
        print(f"{'corruption':<18} {'ours':>10} {'package':>10} {'ratio':>7}")
        ours_seconds = {name: _ours(images, name) for name in corruptions.NAMES}
        reference_seconds: dict[str, float] = {}
        for name in corruptions.NAMES:
            ours_rate = per_setting * len(images) / ours_seconds[name]
            if reference_corrupt is not None and name in corruptions.COMMON:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    reference_seconds[name] = _reference(images[:REFERENCE_IMAGES], name, reference_corrupt)
                reference_rate = per_setting * REFERENCE_IMAGES / reference_seconds[name]
                print(f"{name:<18} {ours_rate:>10.0f} {reference_rate:>10.0f} {ours_rate / reference_rate:>6.1f}x")
            else:
                print(f"{name:<18} {ours_rate:>10.0f} {'':>10} {'':>7}")
        all_rate = per_setting * len(images) * len(corruptions.NAMES) / sum(ours_seconds.values())
        print(f"{'all 19 x 5':<18} {all_rate:>10.0f}")
        if reference_seconds:
            common_rate = per_setting * len(images) * len(reference_seconds) / sum(
                ours_seconds[name] for name in reference_seconds)
            reference_rate = per_setting * REFERENCE_IMAGES * len(reference_seconds) / sum(reference_seconds.values())
            print(f"{'common 15 x 5':<18} {common_rate:>10.0f} {reference_rate:>10.0f} "
                  f"{common_rate / reference_rate:>6.1f}x")
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
