"""One check of a store's manifest.json: every key a reader uses is present, of its type, and bounded by
what the store's files hold, so no manifest value can make a reader allocate without limit.

`validated(manifest, root)` returns the manifest unchanged or raises StoreError naming manifest.json, the
key and what is wrong. Bounds: `num_classes` equals the length of `class_names` (a list the file itself
holds); `num_samples` equals the rows of samples.parquet when that file reads; corruptions are names a
partition directory can carry; severities are small positive integers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from store import schema
from store.writer import StoreError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # a corruption name, as a partition directory holds it
MAX_SEVERITY = 100


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problem(manifest: Mapping[str, Any], root: Path) -> str | None:
    """What is wrong with the manifest's values, or None."""
    if not isinstance(manifest, Mapping):
        return "is not a JSON object"
    missing = [key for key in ("dataset", "class_names", "num_classes", "num_samples", "corruptions", "severities")
               if key not in manifest]
    if missing:
        return f"lacks key(s) {', '.join(missing)}"
    names, num_classes = manifest["class_names"], manifest["num_classes"]
    if not isinstance(manifest["dataset"], str):
        return f"dataset is {manifest['dataset']!r}, expected text"
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        return "class_names is not a non-empty list of texts"
    if not _is_int(num_classes) or num_classes != len(names):
        return f"num_classes is {num_classes!r}, but class_names lists {len(names)} classes"
    num_samples = manifest["num_samples"]
    if not _is_int(num_samples) or num_samples < 0:
        return f"num_samples is {num_samples!r}, expected a count of samples"
    rows = _sample_rows(root)
    if rows is not None and rows != num_samples:
        return f"num_samples is {num_samples}, but {schema.SAMPLES} holds {rows} rows"
    corruptions = manifest["corruptions"]
    if not isinstance(corruptions, list) or not all(isinstance(c, str) and NAME.fullmatch(c) for c in corruptions):
        return "corruptions is not a list of corruption names (letters, digits, '.', '_', '-')"
    if schema.CLEAN in corruptions or len(set(corruptions)) != len(corruptions):
        return f"corruptions repeats a name or lists {schema.CLEAN!r}"
    severities = manifest["severities"]
    if not isinstance(severities, list) or not all(_is_int(s) and 1 <= s <= MAX_SEVERITY for s in severities):
        return f"severities is not a list of integers from 1 to {MAX_SEVERITY}"
    if len(set(severities)) != len(severities):
        return "severities repeats a value"
    return None


def _sample_rows(root: Path) -> int | None:
    """Rows of samples.parquet from its footer; None when it does not read (its own problem, not the
    manifest's: the pages that read it say so)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(root / schema.SAMPLES).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


def validated(manifest: Mapping[str, Any], root: str | Path) -> Mapping[str, Any]:
    """`manifest` when every value a reader uses is present, typed and bounded by the store's files;
    StoreError naming the file, the key and the fault otherwise."""
    problem = _problem(manifest, Path(root))
    if problem:
        raise StoreError(f"{Path(root) / schema.MANIFEST}: {problem}")
    return manifest
