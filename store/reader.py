"""Reading a store without DuckDB: its manifest, where partitions live, which are complete, the classifier
table. The catalog (DuckDB views), the writer and provenance build on these.

Every metadata read is bounded before it is parsed, so no file of a hostile store can make a reader
allocate more than the file's own size allows or recurse without end: JSON (`read_json`) is read only from
a regular file of at most MAX_JSON_BYTES, nested at most MAX_JSON_DEPTH deep, with numbers of at most
MAX_NUMBER_CHARS characters and no NaN or Infinity; a Parquet footer (`parquet_metadata`) may declare at
most MAX_ROWS_PER_BYTE rows per byte of its file (prunescope's own files hold under one; a file declaring
millions of rows in a few kilobytes would make DuckDB allocate for all of them).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from store import layout
from store.confine import regular
from store.layout import StoreError

MAX_JSON_BYTES = 64 << 20  # a manifest of 100,000 class names and every setting's provenance is far smaller
MAX_JSON_DEPTH = 32  # prunescope's JSON nests 4 deep
MAX_NUMBER_CHARS = 40  # any int64, any float64 written by json.dumps
MAX_ROWS_PER_BYTE = 4  # prunescope's samples.parquet holds about 0.2 rows per byte, prediction files far fewer
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _number(text: str, convert: type) -> Any:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    value = convert(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str) -> Any:
    """JSON text as Python values, bounded (depth, number size, no NaN/Infinity); ValueError saying what."""
    depth = deepest = 0
    # Nesting needs an opening bracket per level: text with at most MAX_JSON_DEPTH of them (a derived file's
    # record of 10,080 file names has a handful) cannot nest deeper, and skips the scan.
    openings = text.count("[") + text.count("{")
    for match in _STRING_OR_BRACKET.finditer(text) if openings > MAX_JSON_DEPTH else ():  # strings skipped whole: brackets inside them don't count
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} deep")
        elif token in "]}":
            depth -= 1
    return json.loads(text, parse_int=lambda t: _number(t, int), parse_float=lambda t: _number(t, float),
                      parse_constant=_no_constant)


def read_json(path: str | Path) -> Any:
    """The JSON value of a store file, read within the bounds of parse_json from a regular file of at most
    MAX_JSON_BYTES; StoreError naming the file and what is wrong."""
    regular(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(f"{size} bytes, more than {MAX_JSON_BYTES}")
        return parse_json(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise StoreError(f"{path} is not valid JSON: {error}") from error


def parquet_metadata(path: str | Path, rows: int | None = None) -> pq.FileMetaData:
    """The footer of a Parquet file of the store, once the file is regular and the rows it declares fit its
    size (MAX_ROWS_PER_BYTE) and, given `rows`, equal them; StoreError naming the file otherwise."""
    regular(path)
    try:
        metadata = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowException) as error:
        raise StoreError(f"{path}: not a readable Parquet file (truncated or overwritten?): {error}") from error
    size = Path(path).stat().st_size
    if metadata.num_rows > MAX_ROWS_PER_BYTE * size:
        raise StoreError(f"{path}: declares {metadata.num_rows} rows in {size} bytes, more than its bytes can "
                         "hold; not read")
    if rows is not None and metadata.num_rows != rows:
        raise StoreError(f"{path}: holds {metadata.num_rows} rows, expected {rows}")
    return metadata


def read_table(path: str | Path, columns: list[str] | None = None, rows: int | None = None) -> pa.Table:
    """A Parquet file of the store as a table, read only once parquet_metadata found it regular and its
    declared rows within its size (and equal to `rows` when given): every table read of a store file."""
    parquet_metadata(path, rows)
    # One file: ParquetFile reads it without pq.read_table's dataset layer, whose import pulls in pandas
    # (half a second of a fresh server's first page: it opens the store).
    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=columns)


def read_manifest(root: str | Path, *, migrating: bool = False) -> dict[str, Any]:
    """The store's manifest; StoreError naming the file when it is missing, damaged, of another format
    than layout.SCHEMA_VERSION (an older one says to run `compute migrate`) or half-way through a
    migration. `migrating` (for `compute migrate` only) also accepts the formats it converts and an
    interrupted migration."""
    path = Path(root) / layout.MANIFEST
    if not path.exists() and not path.is_symlink():
        raise StoreError(f"{Path(root)} is not a prunescope store: {path} is missing "
                         f"(build one with `python -m compute demo --out {Path(root)}`)")
    manifest = read_json(path)
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version in layout.MIGRATES_FROM and not migrating:
        raise StoreError(f"{path}: a format-{version} store; convert it to format {layout.SCHEMA_VERSION} with "
                         f"`python -m compute migrate --store {Path(root)}`")
    if version != layout.SCHEMA_VERSION and version not in layout.MIGRATES_FROM:
        raise StoreError(f"{path} has schema version {version!r}; this prunescope reads format "
                         f"{layout.SCHEMA_VERSION} (and migrates format {', '.join(map(str, layout.MIGRATES_FROM))}). "
                         "Rebuild the store with this version.")
    if manifest.get("migrating_to") and not migrating:
        raise StoreError(f"{path}: a migration to format {manifest['migrating_to']} was interrupted; finish it "
                         f"with `python -m compute migrate --store {Path(root)}`")
    return manifest


def partition_dir(root: str | Path, model_id: str, corruption: str, severity: int) -> Path:
    return (Path(root) / layout.PREDICTIONS / f"model_id={model_id}" / f"corruption={corruption}"
            / f"severity={severity}")


def partition_file(root: str | Path, model_id: str, corruption: str, severity: int) -> Path:
    return partition_dir(root, model_id, corruption, severity) / "part-0.parquet"


def prediction_files(root: str | Path) -> list[Path]:
    """Every published prediction file of the store, sorted (model, corruption, severity)."""
    return sorted((Path(root) / layout.PREDICTIONS).glob("*/*/*/*.parquet"))


def marker_path(root: str | Path, model_id: str, corruption: str, severity: int) -> Path:
    return Path(root) / layout.COMPLETE / f"{model_id}__{corruption}__{severity}.json"


def is_complete(root: str | Path, model_id: str, corruption: str, severity: int) -> bool:
    """True when the partition's marker exists and its file holds the recorded number of rows."""
    marker = marker_path(root, model_id, corruption, severity)
    part = partition_file(root, model_id, corruption, severity)
    if not (marker.is_file() and part.is_file()):
        return False
    try:
        parquet_metadata(part, read_json(marker)["rows"])
    except (StoreError, KeyError, TypeError):
        return False
    return True


def complete_partitions(root: str | Path) -> list[dict[str, Any]]:
    """Every complete partition's (model_id, corruption, severity, rows, bytes, sums), from the markers."""
    out = []
    for marker in sorted((Path(root) / layout.COMPLETE).glob("*.json")):
        model_id, corruption, severity = marker.stem.rsplit("__", 2)
        out.append({"model_id": model_id, "corruption": corruption, "severity": int(severity),
                    **read_json(marker)})
    return out


def clean_accuracy(root: str | Path, model_id: str) -> float | None:
    """Accuracy of `model_id` on clean images, from its clean partition's marker; None while that is
    incomplete or its marker predates the correct count (`compute index` adds it; `compute migrate` adds it
    to format-1 markers)."""
    if not is_complete(root, model_id, layout.CLEAN, 0):
        return None
    marker = read_json(marker_path(root, model_id, layout.CLEAN, 0))
    return marker["correct"] / max(marker["rows"], 1) if "correct" in marker else None


def file_version(path: str | Path) -> int:
    """The format of one prediction file, from its columns (format 2 has `classes`)."""
    return 2 if "classes" in pq.read_schema(regular(path)).names else 1


def read_classifiers(root: str | Path) -> pa.Table:
    """classifiers.parquet (empty when the store has none yet, e.g. format 1)."""
    path = Path(root) / layout.CLASSIFIERS
    if not path.exists():
        return layout.CLASSIFIER_SCHEMA.empty_table()
    return read_table(path)


def read_layers(root: str | Path) -> pa.Table:
    """layers.parquet (empty when the store has none: written before it, or no model's weights loaded)."""
    path = Path(root) / layout.LAYERS
    if not path.exists():
        return layout.LAYER_SCHEMA.empty_table()
    return read_table(path)
