"""What a model costs to keep and to run: parameters, non-zeros, bytes on disk, CPU latency per image.

Mask pruning (ft, gmp, nm, ...) zeroes weights but keeps every parameter, so it changes non-zeros and
nothing else here; channel pruning removes parameters, and int8 quantization stores a quarter of the
bytes and runs int8 kernels. Latency is wall time per image of forward() on CPU at a given batch size,
on one thread (several threads that wait on each other also wait on every other job of a shared machine:
at batch 1 their figures scattered 10x): the median of up to `repeats` timed runs after a warm-up run of
one image, beside the machine's one-minute load average, since a shared machine's timings mean little
without it. Timing stops after BUDGET_S seconds per batch size (at least one run), so a 224-px model at
batch 256 costs extraction about one batch, not five.
"""

from __future__ import annotations

import copy
import io
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from compute.models.base import prunable_weights, weight_counts

BATCH_SIZES = (1, 256)
BUDGET_S = 2.0  # seconds of timed runs per batch size, past which no further run starts
# Timed runs per batch size at extraction: 3, or $PRUNESCOPE_LATENCY_REPEATS (a whole number >= 1; the test
# suite, which extracts hundreds of small models and never reads their latency's third digit, uses 1).
REPEATS_VARIABLE = "PRUNESCOPE_LATENCY_REPEATS"
REPEATS = 3


def repeats() -> int:
    """The timed runs per batch size extraction makes: $PRUNESCOPE_LATENCY_REPEATS, else REPEATS;
    ValueError naming the variable and its value when it is not a whole number from 1 to 100."""
    text = os.environ.get(REPEATS_VARIABLE, "").strip()
    if not text:
        return REPEATS
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise ValueError(f"${REPEATS_VARIABLE} is {text[:40]!r}: a whole number of timed runs from 1 to 100")
    return int(text)
THREADS = 1  # one CPU thread: figures that compare across machines and hold on a shared one
# The card columns that are timings of this machine at this moment: two runs of the same model differ here.
LATENCY_FIELDS = ("latency_ms_batch1", "latency_ms_batch256", "latency_threads", "latency_load_average")


@dataclass(frozen=True)
class Footprint:
    """Size and CPU latency of one model (latency in milliseconds per image, by batch size); the field
    names are the model card's columns."""

    num_params: int
    num_nonzero: int
    file_bytes: int | None
    latency_ms_batch1: float
    latency_ms_batch256: float
    latency_threads: int
    latency_load_average: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def parameters(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters). A quantized layer keeps its weight and bias packed (its `weight`
    and `bias` are methods, not parameters); they count like float ones, an int8 weight by its value."""
    counts = weight_counts(model)
    packed = [tensor for module in model.modules() if callable(getattr(module, "weight", None))
              for tensor in (module.weight(), module.bias()) if tensor is not None]
    return (counts["num_params"] + sum(t.numel() for t in packed),
            counts["num_nonzero"] + sum(int(torch.count_nonzero(t.dequantize() if t.is_quantized else t))
                                        for t in packed))


def prunable(model: nn.Module) -> list[torch.Tensor]:
    """The weights pruning may zero (convolutions and linear layers but the classifier), int8 ones
    dequantized."""
    packed = [module.weight().dequantize() for module in model.modules()
              if callable(getattr(module, "weight", None)) and module.weight().is_quantized]
    return [module.weight for _, module in prunable_weights(model)] + packed


def sparsity(model: nn.Module, full: nn.Module) -> float:
    """Fraction of the prunable weights of `full` (the unpruned architecture) that `model` has removed
    or set to zero: masks, N:M patterns and removed channels alike, quantized or not."""
    kept = sum(int(torch.count_nonzero(weight)) for weight in prunable(model))
    return 1.0 - kept / max(sum(weight.numel() for weight in prunable(full)), 1)


def saved_bytes(path: str | Path) -> int:
    """Bytes of the saved model file."""
    return Path(path).stat().st_size


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of the model's state dict as torch.save writes it (shared tensors once): the file size of a
    model that has no file of its own."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@torch.inference_mode()
def latency(model: nn.Module, image_size: int, batch_size: int, repeats: int = 5,
            budget_s: float = BUDGET_S) -> float:
    """Median wall seconds per image of `model` on CPU over up to `repeats` timed runs of one random batch
    (no run starts after `budget_s` seconds; at least one runs); a run of a small batch is 64 / batch_size
    forward passes, so no run is a single sub-millisecond call. A warm-up pass of one image first
    (allocations, kernel selection, int8 weight packing)."""
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"latency needs repeats >= 1 and batch_size >= 1, got {repeats}, {batch_size}")
    model = copy.deepcopy(model).cpu().eval()
    x = torch.rand(batch_size, 3, image_size, image_size)
    passes = max(1, 64 // batch_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with torch.no_grad():
            model(x[:1])
            times: list[float] = []
            deadline = time.perf_counter() + budget_s
            while len(times) < repeats and (not times or time.perf_counter() < deadline):
                start = time.perf_counter()
                for _ in range(passes):
                    model(x)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times) / (batch_size * passes)


def measure(model: nn.Module, path: str | Path | None, image_size: int, repeats: int = 5) -> Footprint:
    """The model's footprint: counts, the bytes of its file at `path` (None: no file), latency at
    BATCH_SIZES on CPU."""
    total, nonzero = parameters(model)
    one, many = (latency(model, image_size, batch, repeats) * 1000 for batch in BATCH_SIZES)
    size = saved_bytes(path) if path is not None else None
    return Footprint(total, nonzero, size, one, many, THREADS, os.getloadavg()[0])
