"""Executors: who computes an extraction's partitions. Registry `EXECUTORS`, chosen with --executor.

    local   this process, on its device (the default)
    ray     Ray tasks on a Ray cluster (or a local Ray instance): `pip install -r requirements-optional.txt`

The Ray executor keeps the local one's properties. A setting's images are made once, by one task, and
shared by the model tasks through Ray's object store; a model task holds one model (and one GPU, when
the cluster has GPUs) and computes a few of its partitions with the same code as the local executor.
Every partition is still written atomically with its completion marker, so a task that Ray retries
after a lost worker, or a whole run started again, redoes only partitions without a marker. The store
must be a directory every Ray node sees at the same path (a shared file system).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from compute.image_source import ImageSource, to_device
from compute.inference import ExtractSummary, compute_partitions
from compute.worklist import Partition
from store import reader

PARTITIONS_PER_TASK = 8  # a model task's share: large enough to amortise loading, small for balance


@dataclass
class Work:
    """Everything an executor needs to compute partitions into one store."""

    store: Path
    models: Mapping[str, nn.Module]
    source: ImageSource
    num_classes: int
    device: torch.device
    batch_size: int = 256


class Executor(Protocol):
    """Computes and writes the partitions `todo` (complete ones already left out) of `work`."""

    def run(self, work: Work, todo: Sequence[Partition], progress: bool) -> ExtractSummary: ...


class LocalExecutor:
    """Computes every partition in this process, on `work.device`."""

    def run(self, work: Work, todo: Sequence[Partition], progress: bool) -> ExtractSummary:
        return compute_partitions(work.store, work.models, todo, work.source.on(work.device, work.batch_size),
                                  work.source.test.labels, work.num_classes, work.device, work.batch_size,
                                  progress)


class ExecutorError(ValueError):
    """An executor cannot run here (e.g. its optional dependency is not installed)."""


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as error:
        raise ExecutorError("--executor ray needs the optional dependency ray: "
                            "pip install -r requirements-optional.txt") from error
    return ray


def _task_device(gpus: float) -> torch.device:
    """The device of a task: the GPU Ray gave it (Ray sets CUDA_VISIBLE_DEVICES), else the CPU."""
    return torch.device("cuda") if gpus > 0 and torch.cuda.is_available() else torch.device("cpu")


def _setting_images(source: ImageSource, name: str, severity: int, batch_size: int, gpus: float) -> np.ndarray:
    """One setting's uint8 images, made on the task's device, as a numpy array for the object store."""
    device = _task_device(gpus)
    return source.on(device, batch_size)(name, severity).cpu().numpy()


def _model_task(store: Path, model: nn.Module, parts: Sequence[Partition], labels: np.ndarray, num_classes: int,
                batch_size: int, gpus: float, *images: np.ndarray) -> ExtractSummary:
    """Compute one model's `parts` (those a retried task already finished are skipped).

    `images` holds the images of each distinct setting of `parts`, in order. Ray passes them as
    arguments, so the task starts only once they exist: a task never holds a GPU while it waits.
    """
    todo = [part for part in parts if not reader.is_complete(store, *part)]
    by_setting = dict(zip(dict.fromkeys(part.setting for part in parts), images, strict=True))
    device = _task_device(gpus)
    summary = compute_partitions(store, {parts[0].model_id: model}, todo,
                                 lambda name, severity: to_device(by_setting[name, severity], device),
                                 labels, num_classes, device, batch_size, progress=False)
    summary.skipped = len(parts) - len(todo)
    return summary


class RayExecutor:
    """Ray tasks: one per setting to make its images, one per model and few partitions to extract them.

    `address` is that of a running cluster ("auto", "ray://head:10001"); None starts a local instance
    unless Ray is already initialised (or RAY_ADDRESS is set). `gpus_per_task` defaults to one GPU
    per task when the cluster has GPUs, none otherwise; 0 keeps everything on CPUs.
    """

    def __init__(self, address: str | None = None, gpus_per_task: float | None = None) -> None:
        self.ray = _import_ray()
        self.address = address
        self.gpus_per_task = gpus_per_task

    def run(self, work: Work, todo: Sequence[Partition], progress: bool) -> ExtractSummary:
        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.address)
        gpus = self.gpus_per_task
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        make_images = ray.remote(_setting_images).options(num_gpus=gpus)
        extract_model = ray.remote(_model_task).options(num_gpus=gpus)
        source = ray.put(work.source)
        images = {setting: make_images.remote(source, *setting, work.batch_size, gpus)
                  for setting in dict.fromkeys(part.setting for part in todo)}
        labels = ray.put(work.source.test.labels)
        model_refs = {model_id: ray.put(work.models[model_id].cpu())
                      for model_id in dict.fromkeys(part.model_id for part in todo)}
        tasks: dict[object, list[Partition]] = {}
        for chunk in _chunks(todo):
            needed = [images[setting] for setting in dict.fromkeys(part.setting for part in chunk)]
            task = extract_model.remote(work.store, model_refs[chunk[0].model_id], chunk, labels,
                                        work.num_classes, work.batch_size, gpus, *needed)
            tasks[task] = chunk
        users = Counter(part.setting for part in todo)
        summary = ExtractSummary()
        with tqdm(total=len(todo), desc="extract (ray)", unit="part", disable=not progress) as bar:
            pending = list(tasks)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                summary.add(ray.get(done[0]))
                bar.update(len(tasks[done[0]]))
                users.subtract(part.setting for part in tasks[done[0]])
                for setting in [s for s, n in users.items() if n == 0 and s in images]:
                    del images[setting]  # no task needs these images any more: free the object store
        return summary


def _chunks(todo: Sequence[Partition]) -> list[list[Partition]]:
    """Model tasks: each model's partitions in runs of PARTITIONS_PER_TASK, early settings first."""
    by_model = {model_id: [p for p in todo if p.model_id == model_id]
                for model_id in dict.fromkeys(p.model_id for p in todo)}
    chunks = []
    for start in range(0, max(map(len, by_model.values())), PARTITIONS_PER_TASK):
        chunks.extend(parts[start:start + PARTITIONS_PER_TASK] for parts in by_model.values()
                      if parts[start:start + PARTITIONS_PER_TASK])
    return chunks


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}
