"""What the answers `compute index` stores per setting share (compute.stored_answers writes them, each
named query reads its rows while fresh and computes them otherwise): where a stored answer's rows are, and
what of the model cards an answer depends on (so its definition changes with them: a model's reference,
its group, a chosen reference model)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from store import layout
from store.catalog import Catalog
from store.vocabulary import sql_literal


def rows(catalog: Catalog, file: str) -> str:
    """The SQL source of stored answer `file` (under INDEX): the store's path as a literal, no user text."""
    return f"read_parquet({sql_literal(catalog.root / layout.INDEX / file)})"


# Per open catalog, the model columns asked (read once per catalog, as Catalog.is_fresh judges freshness
# once: the dashboard opens a new catalog when models.parquet changes).
_MODEL_ROWS: weakref.WeakKeyDictionary[Catalog, dict[tuple[str, ...], list[tuple]]] = weakref.WeakKeyDictionary()


def model_rows(catalog: Catalog, columns: Sequence[str]) -> list[tuple]:
    """The `columns` (constant names from the callers) of every model, by model_id."""
    asked = _MODEL_ROWS.setdefault(catalog, {})
    if tuple(columns) not in asked:
        listed = ", ".join(columns)
        asked[tuple(columns)] = catalog.query(f"SELECT {listed} FROM models ORDER BY model_id",  # noqa: S608
                                              name="stored.model_rows").rows()
    return asked[tuple(columns)]


def models_key(catalog: Catalog, columns: Sequence[str]) -> str:
    """model_rows as text for a definition digest: an answer built with other references, groups or cards
    is not fresh."""
    return str(model_rows(catalog, columns))
