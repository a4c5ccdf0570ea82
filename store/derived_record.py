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
    generation  (optional) the store's generation (layout.GENERATION) read before its files were listed

`is_fresh` is the only freshness rule: the record exists, names the same definition and the same inputs,
and every output opens with its recorded rows (a damaged file is stale). The same inputs: the record names
the store's current generation (store.writer.bump_generation gives the store a new one after every change
to its prediction files, so opening a study reads its records and lists none of its 10,080 files), or,
without that, the same files with the same digest. Readers of a stale file fall
back (the catalog computes from the rows); `compute index` rebuilds the index and the pre-aggregates,
`compute embed` (or the demo, which asks this rule) the embeddings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from store import layout, reader, writer
from store.layout import StoreError


def digest(*parts: object) -> str:
    """sha256 of the parts' text, one per line: the digest of a definition (a version and its SQL)."""
    return hashlib.sha256("\n".join(str(part) for part in parts).encode()).hexdigest()


class Inputs:
    """The store's prediction files as a derived file sees them: the store's generation (store.writer gives
    the store a new one after every change to its prediction files), and, listed the first time they are
    asked for, their paths and the digest of their sizes and modification times (one stat per file).

    A record that names the store's current generation was built from the files the store holds now
    (a writer renames a file into place before it bumps the generation), so judging it lists nothing: a
    study of 10,080 partitions opens by reading its records, not by listing and stating every file. A
    store without a generation (written before generations, or its files changed by hand and the
    generation file removed) is judged by the listing alone.
    """

    def __init__(self, root: str | Path, generation: str | None, files: Sequence[Path] | None = None) -> None:
        self.root = Path(root)
        self.generation = generation
        self._listed: tuple[tuple[str, ...], str] | None = None
        self._adopted = False
        if files is not None:
            self._listed = self._describe(files)

    @classmethod
    def of(cls, root: str | Path, files: Sequence[Path]) -> Inputs:
        """The inputs `files`, already listed, judged by them alone (no generation)."""
        return cls(root, None, files)

    @classmethod
    def current(cls, root: str | Path) -> Inputs:
        """The store's prediction files as they are now: its generation read here, the files listed when
        first needed (after the generation: a file published in between makes the record stale, never fresh)."""
        return cls(root, generation(root))

    def _describe(self, files: Sequence[Path]) -> tuple[tuple[str, ...], str]:
        prefix = str(self.root) + os.sep
        names, lines = [], []
        for path in files:  # 10,080 files on a study-sized store: string slicing, not Path.relative_to
            text = str(path)
            if not text.startswith(prefix):
                raise ValueError(f"{path} is not inside {self.root}")
            stat = os.stat(text)
            names.append(text[len(prefix):])
            lines.append(f"{names[-1]} {stat.st_size} {stat.st_mtime_ns}")
        return tuple(names), digest(*lines)

    @property
    def listed(self) -> bool:
        """Whether the files were listed on disk (not only named by a record of the current generation)."""
        return self._listed is not None and not self._adopted

    @property
    def files(self) -> tuple[str, ...]:
        if self._listed is None:
            self._listed = self._describe(reader.prediction_files(self.root))
        return self._listed[0]

    @property
    def digest(self) -> str:
        self.files  # noqa: B018 (lists them when not yet known)
        assert self._listed is not None
        return self._listed[1]

    def adopt(self, files: Sequence[str], file_digest: str) -> None:
        """Take the files and digest of a record of this generation as this store's (nothing is listed)."""
        if self._listed is None:
            self._listed, self._adopted = (tuple(files), file_digest), True


def generation(root: str | Path) -> str | None:
    """The store's generation (layout.GENERATION), or None when it has none or it cannot be read."""
    try:
        value = reader.read_json(Path(root) / layout.GENERATION).get("generation")
    except (StoreError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def reconcile(root: str | Path) -> None:
    """Judge every record by the prediction files as listed now (`compute index` does this first, under the
    store's lock). Files changed without the writer (by hand, or copied in) under a record that names the
    current generation give the store a new generation, so no reader trusts that record again and its file
    is rebuilt; a record whose files are exactly those listed now is given the current generation, so
    opening the store lists nothing. A store without a generation gets one."""
    root = Path(root)
    if generation(root) is None:
        writer.bump_generation(root)
    listed = Inputs.current(root)  # the generation read before the files are listed
    current = listed.generation
    restamp = []
    for path in sorted((root / layout.INDEX).glob("*.json")):
        try:
            record = reader.read_json(path)
        except StoreError:
            continue  # a damaged record is stale anyway
        if not (isinstance(record, dict) and isinstance(record.get("inputs"), dict)):
            continue
        same = record.get("files") == list(listed.files) and record["inputs"].get("digest") == listed.digest
        if record.get("generation") == current and not same:  # changed behind the writer's back
            writer.bump_generation(root)
            return reconcile(root)
        if same and record.get("generation") != current:
            restamp.append((path, record))
    for path, record in restamp:
        writer.write_json(root, {**record, "generation": current}, path)


def record_path(root: str | Path, name: str) -> Path:
    return Path(root) / layout.INDEX / f"{name}.json"


def write(root: str | Path, name: str, *, inputs: Inputs, rows: int, definition: str,
          outputs: Mapping[str, int], sizes: Mapping[str, int] | None = None) -> None:
    """Record derived file `name` (after its outputs are written): inputs, their `rows`, definition, outputs,
    and optionally `sizes` ({output: bytes}: a file whose row count reads from its header, such as a DuckDB
    database, is also judged by its size, so a truncated one is stale)."""
    root = Path(root)
    writer.write_json(root, {"files": list(inputs.files), "inputs": {"digest": inputs.digest, "rows": int(rows)},
                             **({"generation": inputs.generation} if inputs.generation else {}),
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
                and isinstance(record.get("inputs"), dict) and isinstance(record.get("outputs"), dict)):
            return False
        files, file_digest = record.get("files"), record["inputs"].get("digest")
        if (inputs.generation is not None and record.get("generation") == inputs.generation
                and isinstance(files, list) and all(isinstance(f, str) for f in files) and isinstance(file_digest, str)):
            inputs.adopt(files, file_digest)  # built from the files of the store's current generation
        elif not (file_digest == inputs.digest and files == list(inputs.files)):
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
