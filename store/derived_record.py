"""The record of every derived file, and the one rule that says whether it is fresh.

A derived file (the by-sample index, the pre-aggregates, the embeddings) is a function of the store's
prediction files and of its own definition. Its builder writes, after the files it describes, a record
`index/<name>.json`:

    files       the prediction files it was built from (paths relative to the store)
    inputs      {"digest": sha256 of "<path> <bytes> <mtime_ns>" per file, "rows": their rows}: a file
                written again (a model extracted again under the same id) changes the digest
    definition  sha256 of what computes it (a version constant and its SQL text or parameters): an upgrade
                that computes it another way makes the old file stale
    outputs     {file name: rows} of the files it describes, relative to `index/` (or to `embeddings/`)
    bytes       (optional) {file name: size}: for an output whose rows are read from its header alone

`is_fresh` is the only freshness rule: the record exists, names the same definition and the same inputs,
and every output opens with its recorded rows (a damaged file is stale). Readers of a stale file fall
back (the catalog computes from the rows); `compute index` rebuilds the index and the pre-aggregates,
`compute embed` (or the demo, which asks this rule) the embeddings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from store import layout, reader, writer
from store.layout import StoreError


def digest(*parts: object) -> str:
    """sha256 of the parts' text, one per line: the digest of a definition (a version and its SQL)."""
    return hashlib.sha256("\n".join(str(part) for part in parts).encode()).hexdigest()


@dataclass(frozen=True)
class Inputs:
    """The store's prediction files as a derived file sees them: their paths and the digest of their
    sizes and modification times (one stat per file: cheap next to reading one marker per partition)."""

    files: tuple[str, ...]
    digest: str

    @classmethod
    def of(cls, root: str | Path, files: Sequence[Path]) -> Inputs:
        prefix = str(Path(root)) + os.sep
        names, lines = [], []
        for path in files:  # 10,080 files on a study-sized store: string slicing, not Path.relative_to
            text = str(path)
            if not text.startswith(prefix):
                raise ValueError(f"{path} is not inside {root}")
            stat = os.stat(text)
            names.append(text[len(prefix):])
            lines.append(f"{names[-1]} {stat.st_size} {stat.st_mtime_ns}")
        return cls(tuple(names), digest(*lines))

    @classmethod
    def current(cls, root: str | Path) -> Inputs:
        """The store's prediction files as they are now (listed here)."""
        return cls.of(root, reader.prediction_files(root))


def record_path(root: str | Path, name: str) -> Path:
    return Path(root) / layout.INDEX / f"{name}.json"


def write(root: str | Path, name: str, *, inputs: Inputs, rows: int, definition: str,
          outputs: Mapping[str, int], sizes: Mapping[str, int] | None = None) -> None:
    """Record derived file `name` (after its outputs are written): inputs, their `rows`, definition, outputs,
    and optionally `sizes` ({output: bytes}: a file whose row count reads from its header, such as a DuckDB
    database, is also judged by its size, so a truncated one is stale)."""
    root = Path(root)
    writer.write_json(root, {"files": list(inputs.files), "inputs": {"digest": inputs.digest, "rows": int(rows)},
                             "definition": definition, "outputs": dict(outputs),
                             **({"bytes": dict(sizes)} if sizes else {})}, record_path(root, name))


def forget(root: str | Path, name: str) -> None:
    """Remove the record (before rebuilding: nobody reads the old outputs while the new ones are written)."""
    record_path(root, name).unlink(missing_ok=True)


def is_fresh(root: str | Path, name: str, *, definition: str, inputs: Inputs, folder: str = layout.INDEX,
             count: Callable[[Path], int] | None = None) -> bool:
    """True when derived file `name` was built by `definition` from exactly `inputs`, and each of its outputs
    (under `folder` of the store) opens with its recorded row count (`count(path)`: a Parquet file's
    rows by default; a failure to count, StoreError, makes it stale). The one freshness rule."""
    count = count or (lambda file: reader.parquet_metadata(file).num_rows)
    root = Path(root)
    path = record_path(root, name)
    if not path.is_file():
        return False
    try:
        record = reader.read_json(path)
        if not (isinstance(record, dict) and record.get("definition") == definition
                and isinstance(record.get("inputs"), dict) and record["inputs"].get("digest") == inputs.digest
                and record.get("files") == list(inputs.files) and isinstance(record.get("outputs"), dict)):
            return False
        outputs = record["outputs"]  # plain file names: a record never sends a reader outside its folder
        sizes = record.get("bytes", {})
        if not isinstance(sizes, dict) or any(file not in outputs or not (root / folder / file).is_file()
                                              or (root / folder / file).stat().st_size != size
                                              for file, size in sizes.items()):
            return False
        return bool(outputs) and all(Path(file).name == file and (root / folder / file).is_file()
                                     and isinstance(rows, int)
                                     and count(root / folder / file) == rows
                                     for file, rows in outputs.items())
    except StoreError:
        return False
