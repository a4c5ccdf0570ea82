"""What the answers `compute index` stores per setting share (compute.stored_answers writes them, each
named query reads its rows while fresh and computes them otherwise): where a stored answer's rows are, and
what of the model cards an answer depends on (so its definition changes with them: a model's reference,
its group, a chosen reference model)."""

from __future__ import annotations

from collections.abc import Sequence

from store import layout
from store.catalog import Catalog
from store.vocabulary import sql_literal


def rows(catalog: Catalog, file: str) -> str:
    """The SQL source of stored answer `file` (under INDEX): the store's path as a literal, no user text."""
    return f"read_parquet({sql_literal(catalog.root / layout.INDEX / file)})"


def models_key(catalog: Catalog, columns: Sequence[str]) -> str:
    """The `columns` of every model (constant names from the callers), as text for a definition digest:
    an answer built with other references, groups or cards is not fresh."""
    listed = ", ".join(columns)
    return str(catalog.query(f"SELECT {listed} FROM models ORDER BY model_id",  # noqa: S608 (constant names)
                             name="stored.models_key").rows())
