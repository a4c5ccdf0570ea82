"""Occlusion attribution of one sample: slide a patch over the image and recompute its geometry.

The only place the dashboard runs a model. torch is imported inside the functions, on demand, so pages
load without it; checkpoints load once per process (st.cache_resource). The Sample page passes the image
the model saw (`compute.pixels.image` through dashboard.images.sample_image), so the maps are of the pixels
extraction used, and no map is drawn when those pixels cannot be had.

One click cannot take the server down: the patch and stride scale with the image (about the same 7 x 7 grid of
patch positions at every size, `patch_and_stride`), the occluded copies go through the model in chunks
sized by a memory budget (`chunk_size`: MEMORY_BUDGET for the whole server, shared by at most MAX_RUNNING
attributions at once), each chunk reports progress (the page draws a bar and a Cancel button, whose
click stops the run at the next chunk), a visitor runs one attribution at a time (`one_attribution`), and
results are kept per (store, checkpoint, sample, setting) (`cached`), so asking again costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from dashboard.text import escape, public
from store.confine import regular, resolve_allowed
from store.layout import StoreError
from store.reader import parse_json

METRICS = ("angle_true", "feature_norm", "margin")
UNITS = {"angle_true": "degrees", "feature_norm": "feature units", "margin": "feature units"}
GRID = 7  # about this many patch positions per side at every image size (8-px patch, stride 4, on 32 px)
MEMORY_BUDGET = 2 << 30  # bytes for every attribution of the server together
MAX_RUNNING = 2  # attributions running at once on the whole server
# Memory of one occluded copy going through a model, in units of its float32 input: the input itself
# plus the largest activations kept at once in inference (a ResNet-50 at 224 px holds about 20x its input).
COPY_FACTOR = 64
CACHED = 64  # results kept per server
Progress = Callable[[int, int], None]  # (copies done, copies in all)


class Busy(Exception):  # noqa: N818 (a state, not a fault: the page says "try again")
    """No attribution can start now: this visitor's other one runs, or the server's MAX_RUNNING do."""


def patch_and_stride(size: int) -> tuple[int, int]:
    """(patch, stride) for a `size`-px image: a patch of a quarter of the side moved by half a patch, so
    about GRID x GRID positions at every size (8 and 4 px on 32 px; 56 and 28 on 224 px)."""
    patch = max(2, size // 4)
    return patch, max(1, patch // 2)


def chunk_size(image_shape: tuple[int, ...], budget: int = MEMORY_BUDGET // MAX_RUNNING) -> int:
    """How many occluded copies go through the model at once within `budget` bytes (at least one)."""
    return max(1, budget // _copy_bytes(image_shape))


def _copy_bytes(image_shape: tuple[int, ...]) -> int:
    """Estimated memory of one occluded copy going through a model (COPY_FACTOR times its float32 input)."""
    return image_shape[0] * image_shape[1] * 3 * 4 * COPY_FACTOR


def occlusion(model: Any, image: np.ndarray, label: int, patch: int | None = None, stride: int | None = None,
              budget: int = MEMORY_BUDGET // MAX_RUNNING, progress: Progress | None = None) -> dict[str, Any]:
    """Per metric of METRICS, an (H, W) map: the mean change of the metric (occluded minus original) over
    the patch positions covering each pixel; the patch is filled with the image's mean colour. Also
    `original`: the metric values of the unoccluded image.

    `model` meets the model contract (forward_features, classifier); `image` is uint8 (H, W, 3). `patch`
    and `stride` default to patch_and_stride of the image's side; the copies go through the model in
    chunks of chunk_size(budget), and `progress(done, total)` is called after each.
    """
    import torch

    from compute import geometry

    height, width = image.shape[:2]
    default_patch, default_stride = patch_and_stride(min(height, width))
    patch, stride = patch or default_patch, stride or default_stride
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
    fill = x.mean(dim=(1, 2), keepdim=True)
    corners = [None] + [(top, left) for top in range(0, height - patch + 1, stride)
                        for left in range(0, width - patch + 1, stride)]  # None: the original image
    step = chunk_size(image.shape, budget)
    values: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
    for start in range(0, len(corners), step):
        chunk = corners[start:start + step]
        batch = x.repeat(len(chunk), 1, 1, 1)
        for index, corner in enumerate(chunk):
            if corner is not None:
                top, left = corner
                batch[index, :, top:top + patch, left:left + patch] = fill
        with torch.no_grad():
            features = model.forward_features(batch)
            result = geometry.compute(features, model.classifier.weight, model.classifier.bias,
                                      torch.full((len(batch),), int(label)))
        for metric in METRICS:
            values[metric].append(getattr(result, metric).double().numpy())
        del batch, features, result
        if progress is not None:
            progress(min(start + step, len(corners)), len(corners))
    maps: dict[str, Any] = {"original": {}}
    for metric in METRICS:
        metric_values = np.concatenate(values[metric])
        change, cover = np.zeros((height, width)), np.zeros((height, width))
        for index, (top, left) in enumerate(corners[1:], start=1):
            change[top:top + patch, left:left + patch] += metric_values[index] - metric_values[0]
            cover[top:top + patch, left:left + patch] += 1
        maps[metric] = np.where(cover > 0, change / np.maximum(cover, 1), np.nan)
        maps["original"][metric] = float(metric_values[0])
    return maps


@st.cache_resource(show_spinner=False, max_entries=8)
def _model(path: str | None, mtime: float, loader: str | None, image_size: int) -> Any:
    """The model a models.parquet row describes: a prunescope checkpoint at `path`, or what its `loader`
    says (compute.cards: module:function with the weights at `path`, or a RobustBench model)."""
    from compute import cards, checkpoint

    record = _loader_record(loader)
    if record is None or record["kind"] == "checkpoint":
        return checkpoint.load(path)[0]
    return cards.load(record, path, image_size)


_running = threading.BoundedSemaphore(MAX_RUNNING)
_visitors: set[str] = set()  # visitors with an attribution running now
_visitors_lock = threading.Lock()


@contextlib.contextmanager
def one_attribution(visitor: str) -> Iterator[None]:
    """Hold one of the server's MAX_RUNNING attribution slots for `visitor` (dashboard.guard.visitor: all
    tabs of one browser); Busy, at once, when this visitor already runs one or every slot is taken."""
    with _visitors_lock:
        if visitor in _visitors:
            raise Busy("your other attribution (in another tab) is still running; try again when it is done")
        if not _running.acquire(blocking=False):
            raise Busy(f"the server is computing {MAX_RUNNING} attributions for other visitors; try again in a "
                       "minute")
        _visitors.add(visitor)
    try:
        yield
    finally:
        with _visitors_lock:
            _visitors.discard(visitor)
            _running.release()


_results: OrderedDict[tuple, dict[str, Any]] = OrderedDict()  # most recently used last
_results_lock = threading.Lock()


def cached(key: tuple) -> dict[str, Any] | None:
    """The maps computed for `key` (see occlusion_maps), or None."""
    with _results_lock:
        if key in _results:
            _results.move_to_end(key)
            return _results[key]
    return None


def occlusion_maps(root: str, recorded: str | None, image: np.ndarray, label: int,
                   setting: tuple[int, str, int], progress: Progress | None = None,
                   loader: str | None = None) -> dict[str, Any]:
    """occlusion() with the model models.parquet records (`recorded`: its checkpoint or weights; `loader`:
    how it is loaded, see compute.cards; loaded once, on the CPU), kept per (store, model file, loader,
    `setting` = (sample_id, corruption, severity)): the image is the one the model saw in that setting, so
    the key stands for it.

    Every file is resolved by store.confine.resolve_allowed: only inside the store `root` or under an
    allowed root; StoreError otherwise (`missing_checkpoint` says why before anything is loaded), and for a
    damaged or mismatched checkpoint (the message names the model's checkpoint, not its path on the server).
    """
    problem = missing_checkpoint(root, recorded, loader)
    if problem:
        raise StoreError(problem)
    path = regular(resolve_allowed(root, recorded)) if recorded else None
    if _copy_bytes(image.shape) > MEMORY_BUDGET // MAX_RUNNING:
        raise StoreError(f"a {image.shape[0]} x {image.shape[1]} image needs more memory for one occluded copy "
                         f"than an attribution may use on this server ({MEMORY_BUDGET // MAX_RUNNING >> 20} MB)")
    key = _key(root, recorded, setting, loader)
    found = cached(key)
    if found is not None:
        return found
    try:
        model = _model(str(path) if path else None, path.stat().st_mtime if path else 0.0, loader, image.shape[0])
    except ValueError as error:  # compute.checkpoint.CheckpointError: a damaged or mismatched file
        raise StoreError(str(error).replace(str(path), "this model's checkpoint") if path else str(error)) from error
    maps = occlusion(model, image, label, progress=progress)
    with _results_lock:
        _results[key] = maps
        while len(_results) > CACHED:
            _results.popitem(last=False)
    return maps


def _loader_record(loader: str | None) -> dict[str, Any] | None:
    """models.parquet's `loader` JSON (compute.cards.ModelSpec.loader), parsed within the store reader's
    bounds; None for a store written before it. StoreError when it is not a JSON object."""
    if loader is None:
        return None
    try:
        record = parse_json(loader)
    except ValueError as error:
        raise StoreError(f"this model's loader record in models.parquet is not valid JSON: {error}") from error
    if not isinstance(record, dict):
        raise StoreError("this model's loader record in models.parquet is not a JSON object")
    return record


def missing_checkpoint(root: str | Path, recorded: str | None, loader: str | None = None) -> str | None:
    """Why attribution cannot run for this model, else None: a prunescope checkpoint that is not recorded,
    outside the store and the allowed roots, or gone; a module:function whose module's file or weights lie
    outside them (the operator decides which code and files the server may load: --allow-root); a
    RobustBench model without the package or outside them. Nothing outside the allowed places is touched,
    so the answer reveals nothing about it."""
    try:
        record = _loader_record(loader)
    except StoreError as error:
        return f"Attribution refused: {error}."
    kind = "checkpoint" if record is None else record.get("kind")
    if kind == "module":
        return _module_problem(root, record) or (_file_problem(root, recorded, "weights") if recorded else None)
    if kind == "robustbench":
        return _robustbench_problem(root, record)
    if not recorded:
        return "This model has no checkpoint recorded in models.parquet, so its attribution cannot be computed."
    return _file_problem(root, recorded, "checkpoint")


def _file_problem(root: str | Path, recorded: str, what: str) -> str | None:
    try:
        path = resolve_allowed(root, recorded, what)
    except StoreError as error:
        return f"Attribution refused: {error}."
    if not path.is_file():
        return f"This model's {what} is not in this store, so the attribution cannot be computed."
    return None


def _module_problem(root: str | Path, record: dict[str, Any]) -> str | None:
    """The module of a module:function loader must be importable and its files allowed (they are code the
    server would run). The top-level package is found first (finding it runs none of its code) and must
    lie under the allowed places before a dotted module's parent package is imported to find the rest."""
    module = str(record.get("function", "")).partition(":")[0]
    for name in dict.fromkeys([module.partition(".")[0], module]):
        try:
            spec = importlib.util.find_spec(name) if name else None
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            return (f"The model's module `{module}` cannot be imported by this server, so its attribution cannot "
                    "be computed (the operator starts the dashboard where it is importable: PYTHONPATH).")
        if not Path(spec.origin).is_absolute():  # built into Python (frozen, built-in): never a model's file
            return f"Attribution refused: the model's module `{module}` is not a file under the allowed roots."
        problem = _file_problem(root, spec.origin, "model module")
        if problem:
            return problem
    return None


def _robustbench_problem(root: str | Path, record: dict[str, Any]) -> str | None:
    if importlib.util.find_spec("robustbench") is None:
        return "RobustBench models need the optional robustbench package, which this server does not have."
    model_dir = record.get("model_dir")
    if not model_dir:
        return "This RobustBench model's download directory is not recorded, so it cannot be loaded here."
    try:
        resolve_allowed(root, model_dir, "RobustBench model directory")
    except StoreError as error:
        return f"Attribution refused: {error}."
    return None


def panel(root: str, recorded: str | None, image: np.ndarray, label: int, setting: tuple[int, str, int],
          visitor: str, toggle: str, loader: str | None = None) -> dict[str, Any] | None:
    """Compute the maps on the page: a progress bar and a Cancel button (it turns the `toggle` off; the
    run stops at the next chunk) while it runs; the maps, or None after saying why there are none."""
    if (found := cached(_key(root, recorded, setting, loader))) is not None:
        return found
    bar = st.progress(0.0, text="running the model on the occluded copies...")
    st.button("Cancel", key=f"{toggle}_cancel", on_click=lambda: st.session_state.update({toggle: False}),
              help="stops the attribution at its next chunk of occluded copies")
    try:
        with one_attribution(visitor):
            maps = occlusion_maps(root, recorded, image, label, setting,
                                  progress=lambda done, total: bar.progress(
                                      done / total, text=f"{done} of {total} occluded copies"), loader=loader)
    except (Busy, StoreError) as error:
        bar.empty()
        st.warning(escape(public(str(error))))  # store text (model ids) as written, no server path
        return None
    return maps


def _key(root: str, recorded: str | None, setting: tuple[int, str, int], loader: str | None = None) -> tuple:
    """What a result is kept by: the store, the model's file (and its version), how it is loaded and the
    sample's setting."""
    try:
        mtime = resolve_allowed(root, recorded).stat().st_mtime if recorded else None
    except (StoreError, OSError):
        mtime = None
    return (root, recorded, mtime, loader, *setting)
