"""Extraction: run models over clean and corrupted test images, compute geometry in the same pass,
and write one Parquet partition per (model, corruption, severity).

Corrupted images are made once per setting and shared by every model. Partitions already complete in
the store are skipped, so an interrupted run resumes where it stopped. Parquet encoding and writing run
on a background thread while the next partition is computed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm.auto import tqdm

from compute import checkpoint, corruptions, geometry, models
from compute import device as devices
from compute.datasets.base import ImageSet
from store import schema, writer


@dataclass
class ExtractModel:
    """A model to extract, with the row that describes it in models.parquet."""

    model_id: str
    model: nn.Module
    info: dict[str, Any] = field(default_factory=dict)


def model_row(model_id: str, model: nn.Module, meta: dict[str, Any], checkpoint_path: str | None) -> dict:
    """The models.parquet row for a model; sparsity and parameter counts are measured from the weights."""
    hparams = meta.get("hparams", {})
    counts = models.weight_counts(model)
    return {
        "model_id": model_id,
        "arch": meta.get("arch", type(model).__name__),
        "method": hparams.get("method", "dense"),
        "target_sparsity": float(hparams.get("target_sparsity", 0.0)),
        "sparsity": counts["prunable_zero"] / max(counts["prunable"], 1),
        "seed": int(hparams.get("seed", 0)),
        "num_params": counts["num_params"],
        "num_nonzero": counts["num_nonzero"],
        "checkpoint": checkpoint_path,
        "hparams": json.dumps(hparams, sort_keys=True),
        "clean_accuracy": None,
    }


def from_checkpoint(path: str | Path) -> ExtractModel:
    model, meta = checkpoint.load(path)
    model_id = meta.get("hparams", {}).get("model_id") or Path(path).stem
    return ExtractModel(model_id, model, model_row(model_id, model, meta, str(Path(path).resolve())))


def settings(corruption_names: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int]]:
    """The work list of one model: clean first, then every (corruption, severity)."""
    return [(schema.CLEAN, 0)] + [(name, int(s)) for name in corruption_names for s in severities]


def batches(count: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


@torch.no_grad()
def corrupted_images(images: np.ndarray, name: str, severity: int, seed: int, device: torch.device,
                     batch_size: int) -> np.ndarray:
    """uint8 images under one corruption, made on `device` batch by batch (same bytes as `corrupt`)."""
    if name == schema.CLEAN:
        return images
    out = np.empty_like(images)
    for part in batches(len(images), batch_size):
        x = devices.to_input(images[part], device)
        ids = torch.arange(part.start, part.stop, device=device)
        y = corruptions.corrupt_tensor(x, name, severity, seed=seed, sample_ids=ids)
        out[part] = (y.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out


@torch.no_grad()
def geometry_table(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
                   batch_size: int, num_classes: int) -> pa.Table:
    """Forward every image once through forward_features; geometry from the features and the classifier."""
    weight = model.classifier.weight.float()
    bias = None if model.classifier.bias is None else model.classifier.bias.float()
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    parts: list[dict[str, torch.Tensor]] = []
    for part in batches(len(images), batch_size):
        x = devices.to_input(images[part], device)
        with devices.autocast(device):
            features = model.forward_features(x)
        g = geometry.compute(features.float(), weight, bias, label_tensor[part].to(device))
        parts.append({name: getattr(g, name).cpu() for name in (*geometry.SCALAR_FIELDS, "angles", "logits")})
    columns = {name: torch.cat([p[name] for p in parts]).numpy() for name in parts[0]}
    return writer.prediction_table(columns, num_classes)


@dataclass
class ExtractSummary:
    written: int = 0
    skipped: int = 0
    rows: int = 0
    bytes: int = 0
    non_finite: int = 0


def extract(store: str | Path, entries: Sequence[ExtractModel], test: ImageSet, num_classes: int,
            corruption_names: Sequence[str], severities: Sequence[int], *, device: torch.device,
            batch_size: int = 256, seed: int = 0,
            load_corrupted: Callable[[str, int], np.ndarray] | None = None, progress: bool = True) -> ExtractSummary:
    """Write every missing (model, setting) partition of `entries` into the store at `store`.

    `load_corrupted(name, severity)` supplies published corrupted images (e.g. CIFAR-10-C) instead of
    generating them with `compute.corruptions`.
    """
    store = Path(store)
    for entry in entries:
        models.check_contract(entry.model, f"model {entry.model_id}")
        writer.check_model_id(entry.model_id)
        entry.model = devices.prepare_model(entry.model, device).eval()
    summary = ExtractSummary()
    work = settings(corruption_names, severities)
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=1) as pool, \
            tqdm(total=len(work) * len(entries), desc="extract", unit="part", disable=not progress) as bar:
        for name, severity in work:
            todo = [e for e in entries if not writer.is_complete(store, e.model_id, name, severity)]
            summary.skipped += len(entries) - len(todo)
            bar.update(len(entries) - len(todo))
            if not todo:
                continue
            if name == schema.CLEAN or load_corrupted is None:
                images = corrupted_images(test.images, name, severity, seed, device, batch_size)
            else:
                images = load_corrupted(name, severity)
            for entry in todo:
                bar.set_postfix(model=entry.model_id, setting=f"{name}/{severity}")
                table = geometry_table(entry.model, images, test.labels, device, batch_size, num_classes)
                summary.rows += table.num_rows
                summary.non_finite += table.num_rows - int(np.sum(table.column("finite").to_numpy()))
                pending.append(pool.submit(writer.write_partition, store, entry.model_id, name, severity, table))
                summary.written += 1
                bar.update(1)
        summary.bytes = sum(future.result() for future in pending)
    for entry in entries:
        correct = pq.read_table(writer.partition_file(store, entry.model_id, schema.CLEAN, 0), columns=["correct"])
        entry.info["clean_accuracy"] = float(np.mean(correct.column("correct").to_numpy()))
    return summary
