"""Inference: run a model over one setting's images, compute geometry in the same pass, and write the
partition.

`compute_partitions` computes a run of partitions in order, each setting's images made once for the
models that follow each other; Parquet encoding and writing run on a background thread while the next
partition is computed. Every executor (compute/executors.py) computes partitions with it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from tqdm.auto import tqdm

from compute import device as devices
from compute import geometry, quantize
from compute.worklist import Partition
from store import layout, reader, writer


@dataclass
class ExtractSummary:
    """What a run did. Rows with NaN/inf are kept (flagged finite = false) and counted per model."""

    written: int = 0
    skipped: int = 0
    rows: int = 0
    bytes: int = 0
    non_finite: int = 0
    non_finite_by_model: Counter[str] = field(default_factory=Counter)
    stale_removed: int = 0
    reset_models: list[str] = field(default_factory=list)  # their training record changed: extracted again
    index: Path | None = None  # the by-sample index, once every partition of the work list is complete

    def add(self, other: ExtractSummary) -> None:
        """Fold in the summary of another part of the same run (an executor's task)."""
        for name in ("written", "skipped", "rows", "bytes", "non_finite", "stale_removed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.non_finite_by_model.update(other.non_finite_by_model)


@torch.no_grad()
def geometry_table(model: nn.Module, images: np.ndarray | torch.Tensor, labels: np.ndarray,
                   device: torch.device, batch_size: int, per_class: layout.PerClass | None = None,
                   ) -> tuple[pa.Table, dict[str, Any]]:
    """Forward every image once through forward_features; geometry from the features and the classifier.

    Returns the partition as a format-2 table (the stored scalars, and the logits of the classes
    `per_class` keeps) and its completion summary, taken from the full geometry before it is reduced.
    Results stay on the device until the whole partition is done, so the GPU never waits for a copy.
    """
    per_class = per_class or layout.PerClass()
    device = quantize.device_for(model, device)  # an int8 model runs on CPU, its input copied there
    weight = model.classifier.weight.float()
    bias = None if model.classifier.bias is None else model.classifier.bias.float()
    label_tensor = torch.from_numpy(labels.astype(np.int64)).to(device)
    features = []
    for part in devices.batches(len(images), batch_size):
        x = devices.to_input(images[part], device)
        with devices.autocast(device):
            features.append(model.forward_features(x).float())
    # One geometry pass per partition, not per batch: a few large ops instead of many small ones.
    g = geometry.compute(torch.cat(features), weight, bias, label_tensor)
    classes, kept = geometry.stored_classes(g.logits, g.label, per_class.all_up_to, per_class.top_k)
    logits = g.logits.gather(1, classes)
    columns = {name: getattr(g, name).cpu().numpy() for name in geometry.SCALAR_FIELDS}
    table = writer.prediction_table(columns, classes.cpu().numpy(), logits.cpu().numpy(), kept.cpu().numpy())
    return table, writer.partition_summary(columns)


def classifier_record(model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(|W_c|, b_c) of the model's classifier, for the store's classifiers.parquet."""
    norms, biases = geometry.classifier_norms(model.classifier.weight,
                                              getattr(model.classifier, "bias", None))
    return norms.cpu().numpy(), biases.cpu().numpy()


def compute_partitions(store: Path, models_by_id: Mapping[str, nn.Module], todo: Sequence[Partition],
                       images: Callable[[str, int], torch.Tensor], labels: np.ndarray, num_classes: int,
                       device: torch.device, batch_size: int, progress: bool = True) -> ExtractSummary:
    """Compute and write `todo` in order; each setting's images are made once for its run of models.

    The Parquet file of one partition is written on a background thread while the next is computed;
    waiting for the previous write before handing over the next bounds memory and surfaces a failed
    write at once.
    """
    summary = ExtractSummary()
    per_class = layout.PerClass.of(reader.read_manifest(store))
    prepared = {model_id: devices.prepare_model(models_by_id[model_id],
                                                quantize.device_for(models_by_id[model_id], device)).eval()
                for model_id in dict.fromkeys(p.model_id for p in todo)}
    previous: Future | None = None
    with ThreadPoolExecutor(max_workers=1) as pool, \
            tqdm(total=len(todo), desc="extract", unit="part", disable=not progress) as bar:
        for setting, group in itertools.groupby(todo, key=lambda p: p.setting):
            setting_images = images(*setting)
            for part in group:
                bar.set_postfix(model=part.model_id, setting=f"{part.corruption}/{part.severity}")
                table, part_summary = geometry_table(prepared[part.model_id], setting_images, labels, device,
                                                     batch_size, per_class)
                bad = table.num_rows - int(np.sum(table.column("finite").to_numpy()))
                summary.rows += table.num_rows
                summary.non_finite += bad
                if bad:
                    summary.non_finite_by_model[part.model_id] += bad
                if previous is not None:
                    summary.bytes += previous.result()
                previous = pool.submit(writer.write_partition, store, *part, table, part_summary)
                summary.written += 1
                bar.update(1)
        if previous is not None:
            summary.bytes += previous.result()
    return summary
