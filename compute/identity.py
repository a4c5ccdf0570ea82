"""What a model is called and where its checkpoint lives: model ids, and checkpoints found by run record.

A model id is `<arch>-<tag>-s<seed>` (`small_cnn-ft-90-s0`, `small_cnn-dense-s0`); a derived model puts its
operation before the seed (`small_cnn-channel-50-int8-s0`). This module is the one place those ids are
built. A checkpoint is `<dir>/<model_id>.<digest>.pt`, the digest that of its run record
(`compute.runs.RunRecord`): it is found again only for exactly that record; a checkpoint of the same id
trained from another record is superseded, and retiring it moves it to `<dir>/superseded/`.
"""

from __future__ import annotations

from pathlib import Path

from compute import checkpoint, runs
from compute.runs import RunRecord
from store.vocabulary import UNPRUNED


def model_tag(method: str, sparsity: float) -> str:
    """`ft-90`, `ft-97.5` or `dense`: a model id without its arch and seed (what `[[model]] base` names)."""
    if method == UNPRUNED:
        return UNPRUNED
    percent = round(sparsity * 100, 2)
    return f"{method}-{int(percent) if percent == int(percent) else percent}"


def tagged_id(arch: str, tag: str, seed: int) -> str:
    """`small_cnn-ft-90-s0` from the arch, a `model_tag` and the seed: the rule every model id follows."""
    return _with_seed(f"{arch}-{tag}", seed)


def model_id(arch: str, method: str, sparsity: float, seed: int) -> str:
    """`small_cnn-ft-90-s0` (97.5% sparse: `-97.5-`); dense models are `small_cnn-dense-s0`."""
    return tagged_id(arch, model_tag(method, sparsity), seed)


def derived_id(base_id: str, method: str) -> str:
    """`small_cnn-channel-50-int8-s0` from `small_cnn-channel-50-s0`: the operation before the seed (ids
    without a seed get it at the end)."""
    stem, dash, seed = base_id.rpartition("-s")
    if dash and seed.isdigit():
        return _with_seed(f"{stem}-{method}", seed)
    return f"{base_id}-{method}"


def _with_seed(stem: str, seed: int | str) -> str:
    return f"{stem}-s{seed}"


def checkpoint_path(ckpt_dir: Path, model_id: str, record: RunRecord) -> Path:
    """`<ckpt_dir>/<model_id>.<digest>.pt`: a checkpoint is found by its training record, not its name."""
    return ckpt_dir / f"{model_id}.{record.digest}.pt"


def rewind_path(dense_path: Path) -> Path:
    """Where the dense run's rewind iterate lives: beside the checkpoints, never mistaken for a model."""
    return dense_path.parent / "rewind" / dense_path.name


def superseded(path: Path) -> list[Path]:
    """Checkpoints of the same model id trained from another record (or named before records existed)."""
    model_id = path.name.split(".", 1)[0]
    return sorted(p for p in path.parent.glob(f"{model_id}.*pt")
                  if p != path and p.name.split(".")[0] == model_id and p.suffix == ".pt")


def why_train(path: Path, record: RunRecord) -> str:
    """Why the checkpoint at `path` must be trained: new, or which fields of its record changed."""
    for old in superseded(path):
        try:
            previous = runs.of_checkpoint(checkpoint.read(old))
        except ValueError:
            previous = None
        if previous is None:
            return f"replaces {old.name} (trained before checkpoints carried their run record)"
        return "training record changed: " + ", ".join(record.changes(previous.to_dict()) or ["digest"])
    return "new"


def retire(path: Path) -> None:
    """Move the checkpoints `path` supersedes out of the way (kept, never mistaken for current ones)."""
    for old in superseded(path):
        target = old.parent / "superseded" / old.name
        target.parent.mkdir(parents=True, exist_ok=True)
        old.replace(target)
