"""What is wrong with a store, file by file: `verify` reports every problem and never raises.

Two entry points:

- `validated_manifest(root) -> dict`: the manifest with every value readers use checked for type and
  bounded by what the files hold (num_classes = len(class_names), num_samples = rows of samples.parquet
  and of images/clean.npy, image_size = the images' side, severities in 1..5). Raises StoreError naming
  the file and the key. Pages and commands read manifest values through it, so no manifest value can
  make a reader allocate more than the files themselves hold.
- `verify(root, views, deep) -> list[Problem]`: every damaged, foreign or unexpected file (manifest keys,
  types and bounds; samples, models, prediction, marker, embedding and index files; images; partition
  directory names; symbolic links, which are named and never followed; checkpoint paths that leave the
  store). An empty list means a clean store. `python -m compute verify --store DIR` prints it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from store import aggregates, bases, confine, derived_record, layout, vocabulary
from store.layout import StoreError
from store.reader import marker_path, parquet_metadata, read_json, read_manifest

MAX_CLASSES = 100_000  # far above any study; class_names must hold that many names anyway
MAX_IMAGE_SIZE = 4096
FILE_SUFFIXES = (".parquet", ".json", ".npy")
EMBEDDING_SCHEMAS = {layout.MODEL_EMBEDDING: layout.MODEL_EMBEDDING_SCHEMA, layout.MODEL_TREE: layout.MODEL_TREE_SCHEMA,
                     layout.SAMPLE_EMBEDDING: layout.SAMPLE_EMBEDDING_SCHEMA}


@dataclass(frozen=True)
class Problem:
    """One damaged or unexpected file of a store, and what is wrong with it."""

    path: Path
    view: str  # what reads the file: one of vocabulary.VIEWS, "manifest", or "store" (links, FIFOs, ...)
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# -- the manifest ------------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _key_problems(manifest: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, what is wrong) for each manifest value of the wrong type or out of its own bounds."""
    if not isinstance(manifest.get("dataset"), str):
        yield "dataset", f"must be a string, got {manifest.get('dataset')!r:.80}"
    names = manifest.get("class_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        yield "class_names", "must be a non-empty list of strings"
        names = None
    elif len(names) > MAX_CLASSES:
        yield "class_names", f"holds {len(names)} names, more than {MAX_CLASSES}"
    classes = manifest.get("num_classes")
    if not _is_int(classes) or not 1 <= classes <= MAX_CLASSES:
        yield "num_classes", f"must be an integer in 1..{MAX_CLASSES}, got {classes!r:.80}"
    elif names is not None and classes != len(names):
        yield "num_classes", f"is {classes}, but class_names holds {len(names)} names"
    samples = manifest.get("num_samples")
    if not _is_int(samples) or samples < 1:
        yield "num_samples", f"must be a positive integer, got {samples!r:.80}"
    size = manifest.get("image_size")
    if not _is_int(size) or not 1 <= size <= MAX_IMAGE_SIZE:
        yield "image_size", f"must be an integer in 1..{MAX_IMAGE_SIZE}, got {size!r:.80}"
    corruptions = manifest.get("corruptions")
    if not (isinstance(corruptions, list) and all(isinstance(c, str) and vocabulary.NAME.fullmatch(c) for c in corruptions)):
        yield "corruptions", "must be a list of corruption names (letters, digits, '_', '-', '.')"
    elif len(set(corruptions)) != len(corruptions):
        yield "corruptions", "lists a corruption twice"
    severities = manifest.get("severities")
    if not (isinstance(severities, list) and all(vocabulary.is_severity(s) for s in severities)):
        yield "severities", f"must be a list of integers in 1..5, got {severities!r:.80}"


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file from its header, checked against the file's size (no data read)."""
    with open(confine.regular(path), "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(handle)
        offset = handle.tell()
    if dtype.hasobject:
        raise ValueError("holds Python objects, not numbers")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if os.path.getsize(path) < expected:
        raise ValueError(f"truncated: {os.path.getsize(path)} bytes, its header {shape} needs {expected}")
    return shape, dtype


def _image_problem(path: Path, count: int | None, size: int | None) -> str | None:
    try:
        shape, dtype = _npy_header(path)
    except (OSError, ValueError, SyntaxError, StoreError) as error:
        return f"not a readable .npy array: {error}"
    return layout.images_problem(shape, dtype, count, size)


def _plain(root: Path, path: Path) -> bool:
    """`path` is a file reached from `root` through no symbolic link (links are reported, not followed)."""
    try:
        confine.inside(root, path.relative_to(root))
    except StoreError:
        return False
    return path.is_file()


def _manifest_problems(root: Path, images: bool = True) -> tuple[list[Problem], dict[str, Any]]:
    """(problems of the manifest and what bounds it, the manifest's values that passed); `images`: also
    check images/clean.npy against num_samples and image_size."""
    path = root / layout.MANIFEST
    if path.is_symlink():
        return [Problem(path, "manifest", "a symbolic link; a store is read only from its own plain files")], {}
    try:
        manifest = read_manifest(root)
    except StoreError as error:
        return [Problem(path, "manifest", str(error))], {}
    wrong = list(_key_problems(manifest))
    problems = [Problem(path, "manifest", f"{key!r} {message}") for key, message in wrong]
    values = {key: value for key, value in manifest.items() if key not in {key for key, _ in wrong}}
    samples = root / layout.SAMPLES
    if "num_samples" in values:
        try:
            rows = parquet_metadata(samples).num_rows if _plain(root, samples) else None
        except StoreError:
            rows = None
        # An unreadable samples.parquet is its own problem (the samples check names it), not the manifest's.
        if rows is not None and rows != values["num_samples"]:
            problems.append(Problem(path, "manifest", f"'num_samples' is {values['num_samples']}, but "
                                    f"{samples} holds {rows} rows"))
            del values["num_samples"]
    clean = root / layout.CLEAN_IMAGES
    if images and (_plain(root, clean) or (clean.is_dir() and not clean.is_symlink())):
        problem = _image_problem(clean, values.get("num_samples"), values.get("image_size"))
        if problem:
            problems.append(Problem(clean, "images", problem))
    return problems, values


def validated_manifest(root: str | Path, *, images: bool = True) -> dict[str, Any]:
    """The store's manifest, every value checked and bounded by the files; StoreError naming file and key.

    Checked: dataset (string), class_names (non-empty strings), num_classes (= len(class_names), at most
    MAX_CLASSES), num_samples (= rows of samples.parquet and of images/clean.npy), image_size (= the
    images' side, at most MAX_IMAGE_SIZE), corruptions (names, no repeats), severities (integers 1..5).
    Reads the manifest, the footer of samples.parquet and the header of images/clean.npy: cheap enough
    for every page visit. `images=False` leaves clean.npy to the readers that need it (the dashboard:
    pages without images keep working when only the images are damaged).
    """
    problems, values = _manifest_problems(Path(root), images)
    if problems:
        raise StoreError("; ".join(str(problem) for problem in problems))
    return values


# -- Parquet files --------------------------------------------------------------------------------------

def _schema_problem(found: pa.Schema, expected: pa.Schema) -> str | None:
    missing = [f.name for f in expected if f.name not in found.names]
    if missing:
        return f"lacks column(s) {missing}"
    for f in expected:
        if found.field(f.name).type != f.type:
            return f"column {f.name!r} is {found.field(f.name).type}, expected {f.type}"
    return None


def _file_problem(path: Path, expected: pa.Schema | None, deep: bool) -> tuple[str | None, int]:
    """(what is wrong with one Parquet file or None, its row count)."""
    try:
        metadata = parquet_metadata(path)
    except StoreError as error:
        return str(error).removeprefix(f"{path}: "), 0
    if expected is not None:
        problem = _schema_problem(metadata.schema.to_arrow_schema(), expected)
        if problem:
            return problem, metadata.num_rows
    if deep:
        try:
            pq.read_table(path, page_checksum_verification=True)
        except (OSError, pa.ArrowException) as error:
            return f"damaged data: {error}", metadata.num_rows
    return None, metadata.num_rows


def _files(directory: Path, skip: set[Path]) -> list[Path]:
    """Every plain file under `directory` (links are in `skip` and never followed), sorted."""
    found: list[Path] = []
    if directory in skip:
        return found
    for folder, subdirs, names in os.walk(directory, followlinks=False):
        found.extend(Path(folder, name) for name in names if Path(folder, name) not in skip)
        # a directory named like a file (part-0.parquet/, x.json/) is reported where the file belongs
        found.extend(Path(folder, name) for name in subdirs if Path(name).suffix in FILE_SUFFIXES
                     and Path(folder, name) not in skip)
    return sorted(found)


def _samples_problems(root: Path, manifest: dict[str, Any], deep: bool) -> Iterator[Problem]:
    path = root / layout.SAMPLES
    if not path.is_file():
        yield Problem(path, "samples", "missing")
        return
    problem, _ = _file_problem(path, layout.SAMPLE_SCHEMA, deep)
    if problem:
        yield Problem(path, "samples", problem)
        return
    table = pq.read_table(path, columns=["sample_id", "label"])
    if table.column("sample_id").to_pylist() != list(range(table.num_rows)):
        yield Problem(path, "samples", "sample_id is not 0, 1, 2, ... in row order")
    labels = table.column("label").to_numpy(zero_copy_only=False)
    classes = manifest.get("num_classes")
    if classes is not None and labels.size and (labels.min() < 0 or labels.max() >= classes):
        yield Problem(path, "samples", f"labels must be in 0..{classes - 1} (num_classes), found "
                      f"{labels.min()}..{labels.max()}")


def _models_problems(root: Path, deep: bool) -> Iterator[Problem]:
    path = root / layout.MODELS
    if not path.exists():
        return
    problem, _ = _file_problem(path, layout.MODEL_REQUIRED_SCHEMA, deep)
    if problem:
        yield Problem(path, "models", problem)
        return
    table = pq.read_table(path)
    ids = table.column("model_id").to_pylist()
    bad = [model_id for model_id in ids if not vocabulary.is_model_id(model_id)]
    if bad:
        yield Problem(path, "models", f"model ids {bad[:5]!r:.200} are not valid ids")
    if len(set(ids)) != len(ids):
        yield Problem(path, "models", "lists a model_id twice")
    yield from (Problem(path, "models", problem) for problem in _card_problems(table))


def _card_problems(table: pa.Table) -> Iterator[str]:
    """Card columns of another type than layout.MODEL_SCHEMA's, nulls where every card has a value
    (layout.CARD_REQUIRED), and a lineage with a cycle or a chain deeper than bases.MAX_DEPTH."""
    ids = table.column("model_id").to_pylist()
    for field in layout.MODEL_SCHEMA:
        if field.name in table.column_names and table.schema.field(field.name).type not in (field.type, pa.null()):
            yield (f"column {field.name} is stored as {table.schema.field(field.name).type}, not {field.type} "
                   "(pages read its values as missing)")
    for name in layout.CARD_REQUIRED:
        if name in table.column_names and table.column(name).null_count:
            missing = [model_id for model_id, value in zip(ids, table.column(name).to_pylist(), strict=True)
                       if value is None]
            yield f"{name} is missing for model(s) {missing[:5]!r:.200}"
    if "base" in table.column_names:
        named = dict(zip(map(str, ids), table.column("base").to_pylist(), strict=True))
        yield from bases.lineage_problems(named)


def _layer_row_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with one row of layers.parquet (a kind it does not know, counts out of order), or None."""
    if row["kind"] not in layout.LAYER_KINDS:
        return f"kind {row['kind']!r:.40} is not one of {', '.join(layout.LAYER_KINDS)}"
    weights, nonzero = row["num_weights"], row["num_nonzero"]
    if weights is None or nonzero is None or not 0 <= nonzero <= weights:
        return f"needs 0 <= num_nonzero <= num_weights, got {nonzero} of {weights}"
    channels, live = row["out_channels"], row["live_out_channels"]
    if channels is None or live is None or not 0 <= live <= channels:
        return f"needs 0 <= live_out_channels <= out_channels, got {live} of {channels}"
    return None


def _layers_problems(root: Path, deep: bool) -> Iterator[Problem]:
    """layers.parquet (optional): its schema, kinds and counts, one row per (model, layer), and every
    model_id one of models.parquet's (when that file is readable; else the models check names it)."""
    path = root / layout.LAYERS
    if not path.exists():
        return
    problem, _ = _file_problem(path, layout.LAYER_SCHEMA, deep)
    if problem:
        yield Problem(path, "layers", f"{problem} ({layout.LAYERS_HINT})")
        return
    rows = pq.read_table(path, columns=["model_id", "layer", "kind", "num_weights", "num_nonzero", "out_channels",
                                        "live_out_channels"]).to_pylist()
    for row in rows:
        wrong = _layer_row_problem(row)
        if wrong:
            yield Problem(path, "layers", f"model {row['model_id']!r:.80}, layer {row['layer']!r:.80}: {wrong} "
                          f"({layout.LAYERS_HINT})")
            break
    pairs = [(row["model_id"], row["layer"]) for row in rows]
    if len(set(pairs)) != len(pairs):
        yield Problem(path, "layers", f"lists a layer of a model twice ({layout.LAYERS_HINT})")
    models = root / layout.MODELS
    if not models.exists() or (models.is_file() and not _file_problem(models, layout.MODEL_REQUIRED_SCHEMA, deep=False)[0]):
        known = set(pq.read_table(models, columns=["model_id"]).column("model_id").to_pylist()) if models.exists() else set()
        strangers = sorted({str(model_id) for model_id, _ in pairs if model_id not in known})
        if strangers:
            yield Problem(path, "layers", f"model ids {strangers[:5]!r:.200} are not in {layout.MODELS} "
                          f"({layout.LAYERS_HINT})")


def attribution_notes(root: str | Path) -> list[str]:
    """Models whose checkpoint lies outside the store and the allowed roots (see store.confine): not damage
    (the rows are whole), but attribution cannot load them until the operator allows their directory."""
    path = Path(root) / layout.MODELS
    if not path.is_file() or _file_problem(path, layout.MODEL_REQUIRED_SCHEMA, deep=False)[0]:
        return []  # named by the models check
    table = pq.read_table(path, columns=["model_id", "checkpoint"])
    notes = []
    for model_id, recorded in zip(*table.to_pydict().values(), strict=True):
        if recorded:
            try:
                confine.resolve_allowed(root, recorded)
            except StoreError:
                notes.append(f"model {model_id!r}: its checkpoint lies outside the store and the allowed roots, so "
                             "the dashboard cannot compute its attribution (copy it into the store's checkpoints/, "
                             f"or allow its directory: --allow-root DIR or ${confine.ROOTS_VARIABLE})")
    return notes


def _partition_keys(relative: Path) -> dict[str, str] | None:
    """model_id/corruption/severity of predictions/<relative>, or None when the path is not a partition."""
    parts = relative.parts
    if len(parts) != 4 or parts[3] != "part-0.parquet":
        return None
    pairs = [part.split("=", 1) for part in parts[:3]]
    if any(len(pair) != 2 for pair in pairs) or tuple(key for key, _ in pairs) != layout.PARTITION_KEYS:
        return None
    return dict(pairs)


def _partition_name_problem(keys: dict[str, str], manifest: dict[str, Any]) -> str | None:
    if not vocabulary.is_model_id(keys["model_id"]):
        return f"model_id={keys['model_id']!r} is not a valid model id"
    if not keys["severity"].isdigit():
        return f"severity={keys['severity']!r} is not an integer"
    severity, corruption = int(keys["severity"]), keys["corruption"]
    if corruption == layout.CLEAN:
        return None if severity == 0 else f"clean images have severity 0, not {severity}"
    if "corruptions" in manifest and corruption not in manifest["corruptions"]:
        return f"corruption={corruption!r} is not among the manifest's corruptions"
    if "severities" in manifest and severity not in manifest["severities"]:
        return f"severity={severity} is not among the manifest's severities"
    return None


def _marker_problems(root: Path, skip: set[Path]) -> Iterator[tuple[Path, str]]:
    """(marker, what is wrong) for completion markers that are not JSON of the expected keys."""
    for marker in _files(root / layout.COMPLETE, skip):
        parts = marker.stem.split("__")
        if marker.suffix != ".json" or len(parts) != 3 or not parts[2].isdigit():
            yield marker, "unexpected file: a marker is <model_id>__<corruption>__<severity>.json"
            continue
        try:
            payload = read_json(marker)
        except StoreError as error:
            yield marker, f"not JSON: {error.__cause__}" if error.__cause__ else str(error).removeprefix(f"{marker}: ")
            continue
        if not isinstance(payload, dict) or not all(_is_int(payload.get(key)) for key in ("rows", "bytes")):
            yield marker, "must be a JSON object with integer 'rows' and 'bytes'"
        elif "sums" in payload and not (
                isinstance(payload["sums"], dict) and all(_is_int(payload.get(k)) for k in ("correct", "finite"))
                and all(isinstance(payload["sums"].get(m), int | float) for m in layout.SUMMARY_METRICS)):
            yield marker, f"its sums need integer 'correct', 'finite' and a number for each of {layout.SUMMARY_METRICS}"
        elif not (root / layout.PREDICTIONS / f"model_id={parts[0]}" / f"corruption={parts[1]}"
                  / f"severity={parts[2]}" / "part-0.parquet").is_file():
            yield marker, "marks a partition whose file is missing"


def _prediction_problems(root: Path, manifest: dict[str, Any], deep: bool, skip: set[Path]) -> Iterator[Problem]:
    classes, samples = manifest.get("num_classes"), manifest.get("num_samples")
    expected = (layout.prediction_schema(classes, int(manifest["schema_version"])) if classes is not None
                else None)
    for marker, message in _marker_problems(root, skip):
        yield Problem(marker, "predictions", message)
    base = root / layout.PREDICTIONS
    for path in _files(base, skip):
        keys = _partition_keys(path.relative_to(base))
        if keys is None:
            yield Problem(path, "predictions", "unexpected file: a partition is exactly "
                          "model_id=M/corruption=C/severity=S/part-0.parquet")
            continue
        problem = _partition_name_problem(keys, manifest)
        rows = None
        if problem is None:
            problem, rows = _file_problem(path, expected, deep)
        if problem is None and samples is not None and rows != samples:
            problem = f"holds {rows} rows, the store has {samples} samples"
        marker = marker_path(root, keys["model_id"], keys["corruption"], keys["severity"])
        if problem is None and marker.is_file() and marker not in skip:
            try:
                recorded = read_json(marker).get("rows")
            except (StoreError, AttributeError):
                recorded = rows  # the marker itself is named above
            if recorded != rows:
                problem = f"holds {rows} rows, its marker {marker} records {recorded}"
        if problem:
            yield Problem(path, "predictions", problem)


def _embedding_problems(root: Path, deep: bool, skip: set[Path]) -> Iterator[Problem]:
    for path in _files(root / layout.EMBEDDINGS, skip):
        expected = EMBEDDING_SCHEMAS.get(path.name)
        if expected is None or path.parent != root / layout.EMBEDDINGS:
            yield Problem(path, "embeddings", f"unexpected file: embeddings are {', '.join(EMBEDDING_SCHEMAS)}")
            continue
        problem, _ = _file_problem(path, expected, deep)
        if problem:
            yield Problem(path, "embeddings", problem)


def _image_problems(root: Path, skip: set[Path]) -> Iterator[Problem]:
    """Files under images/: clean.npy (checked with the manifest) and the listings of settings read from
    image trees (images/provenance/<corruption>_<severity>.parquet); any other file is unexpected."""
    for path in _files(root / layout.IMAGES, skip):
        if path == root / layout.CLEAN_IMAGES:
            continue  # checked with the manifest
        if path.parent == root / layout.IMAGES / layout.LISTINGS and path.suffix == ".parquet":
            problem, _ = _file_problem(path, layout.LISTING_SCHEMA, deep=False)  # files read from a tree
            if problem:
                yield Problem(path, "images", problem)
            continue
        yield Problem(path, "images", "unexpected file: images are clean.npy and "
                      "provenance/<corruption>_<severity>.parquet")


def _index_problems(root: Path, manifest: dict[str, Any], deep: bool, skip: set[Path]) -> Iterator[Problem]:

    data, info = root / layout.INDEX / layout.BY_SAMPLE, derived_record.record_path(root, layout.BY_SAMPLE_RECORD)
    for derived in (data, *(aggregates.path(root, name) for name in aggregates.NAMES)):  # pre-aggregates too
        if derived.is_file() and derived not in skip:
            problem, _ = _file_problem(derived, None, deep)
            if problem:
                yield Problem(derived, "index", problem + " (rebuild it with `python -m compute index`)")
    if info.is_file() and info not in skip:
        try:
            payload = read_json(info)
            if not isinstance(payload, dict) or not isinstance(payload.get("files"), list):
                raise ValueError("expected a JSON object with a list 'files'")
        except (StoreError, ValueError) as error:
            yield Problem(info, "index", f"not the index's description: {error}")
    if _is_int(manifest.get("num_samples")) and not any(aggregates.path(root, name) in skip for name in aggregates.NAMES):
        try:  # files whose record calls them fresh, yet that disagree with each other or the partitions
            _, damage = aggregates.state(root, num_samples=manifest["num_samples"])
        except StoreError:
            damage = None  # an unreadable record or file: named above
        if damage:
            file, _, what = damage.partition(": ")
            yield Problem(root / file, "index", f"{what}; not used (rebuild it with `python -m compute index`)")


def verify(root: str | Path, views: Collection[str] = vocabulary.VIEWS, deep: bool = True) -> list[Problem]:
    """Every problem of the store behind the given views, naming the file and the fault; never raises.

    Always checked: the manifest (keys, types, bounds, consistency with samples.parquet and
    images/clean.npy) and symbolic links, FIFOs, sockets and devices anywhere in the store (named, never
    followed or opened). Per view: each
    Parquet file opens and has the columns of its schema; samples hold ids 0..N-1 and labels in range;
    models hold valid, unique ids (checkpoints outside the allowed roots are `attribution_notes`, not damage);
    layers (optional) hold known kinds, counts in order, each layer of a model once, ids of models.parquet;
    prediction partitions have valid directory names, one row per sample and the row count of their
    marker, and markers are JSON with the expected keys; images are uint8 (N, H, W, 3). `deep` also
    decodes every Parquet page and checks its checksum (bytes damaged in place); `deep=False` reads
    footers only. A failure to read any file is reported as a problem of that file, never raised.
    """
    root = Path(root)
    unknown = sorted(set(views) - set(vocabulary.VIEWS))
    if unknown:
        raise ValueError(f"unknown views {unknown}; known: {', '.join(vocabulary.VIEWS)}")
    if not root.is_dir():
        what = "it is a file" if root.exists() else "no such directory"
        return [Problem(root, "manifest", f"is not a prunescope store: {what}")]
    found_entries = confine.not_plain(root)
    problems = [Problem(path, "store", f"{kind}: a store is read only from its own regular files "
                        "(not followed or opened; replace it by a copy of the file)") for path, kind in found_entries]
    skip = {path for path, _ in found_entries}
    found, manifest = _manifest_problems(root) if root / layout.MANIFEST not in skip else ([], {})
    problems.extend(found)
    if not (root / layout.MANIFEST).exists() and root / layout.MANIFEST not in skip:
        return problems  # not a store at all: the manifest's problem says so
    checks = {
        "samples": lambda: _samples_problems(root, manifest, deep) if root / layout.SAMPLES not in skip else iter(()),
        "models": lambda: _models_problems(root, deep) if root / layout.MODELS not in skip else iter(()),
        "layers": lambda: _layers_problems(root, deep) if root / layout.LAYERS not in skip else iter(()),
        "predictions": lambda: _prediction_problems(root, manifest, deep, skip),
        "embeddings": lambda: _embedding_problems(root, deep, skip),
        "images": lambda: _image_problems(root, skip),
        "index": lambda: _index_problems(root, manifest, deep, skip),
    }
    for view in vocabulary.VIEWS:
        if view in views:
            try:
                problems.extend(checks[view]())
            except (OSError, ValueError, pa.ArrowException) as error:  # a file that changed while we read it
                problems.append(Problem(root, view, f"could not be checked: {error}"))
    return problems


def require_clean(root: str | Path, views: Collection[str] = vocabulary.VIEWS, deep: bool = False) -> None:
    """StoreError naming every problem `verify` finds behind `views`: commands call it before they read."""
    problems = verify(root, views, deep)
    if len(problems) == 1:
        raise StoreError(str(problems[0]))
    if problems:
        listed = "\n".join(f"  {problem}" for problem in problems)
        raise StoreError(f"{root}: refusing a damaged store ({len(problems)} problem(s); "
                         f"`python -m compute verify --store {root}` lists them):\n{listed}")
