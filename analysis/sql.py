"""Small SQL pieces every analysis module shares: allow-list checks, safe ratios, bound equality
filters and the check that model ids exist.

SQL text is built only from constants (column names from fixed allow-lists) and, for the free filter,
from the fragment analysis.filters compiled and checked; every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

from store.catalog import Catalog

EPSILON = 1e-12  # a denominator this close to zero makes a ratio null, never inf or NaN


def choice(value: str, allowed: Sequence[str], what: str) -> str:
    """`value` when it is one of `allowed` (so it may be formatted into SQL), else ValueError naming both."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
    return value


def ratio(numerator: str, denominator: str) -> str:
    """SQL for numerator / denominator, null when the denominator is zero up to rounding."""
    return f"CASE WHEN abs({denominator}) > {EPSILON} THEN ({numerator}) / ({denominator}) END"


def defined(expression: str) -> str:
    """SQL for a correlation with NaN (a constant input) turned into null."""
    return f"nullif({expression}, 'NaN'::DOUBLE)"


def equal_to(**values: object) -> tuple[str, list]:
    """`col = ?` for every keyword whose value is not None, joined by AND (`true` when none are).

    The column names are this module's keyword names, never user text; the values are bound.
    """
    given = {name: value for name, value in values.items() if value is not None}
    sql = " AND ".join(f"{name} = ?" for name in given) or "true"
    return sql, list(given.values())


def require_models(catalog: Catalog, model_ids: Sequence[str]) -> None:
    """ValueError naming any id that is not in models.parquet (instead of a silently empty answer)."""
    known = set(catalog.query("SELECT model_id FROM models", name="require_models")["model_id"].to_list())
    unknown = [model_id for model_id in model_ids if model_id not in known]
    if unknown:
        raise ValueError(f"unknown model id(s) {unknown}; known: {', '.join(sorted(known))}")


class NoReference(ValueError):
    """The store has no reference model to compare with (no model names a base, none was chosen)."""


HOW_TO_ADD_A_REFERENCE = ("record each derived model's base (`python -m compute extract ... --base MODEL_ID`, or "
                          "`base` in a models file), or choose a reference model (`--reference MODEL_ID`)")


def reference_model(catalog: Catalog) -> str:
    """The study's reference model: the catalog's chosen reference, else the model most others are compared
    with (`models.reference_model_id`, their base; the first by id on a tie); NoReference when there is none."""
    frame = catalog.query("""
        SELECT reference_model_id AS model_id FROM models WHERE reference_model_id IS NOT NULL
        GROUP BY reference_model_id ORDER BY count(*) DESC, reference_model_id LIMIT 1
    """, name="reference_model")
    if frame.is_empty():
        raise NoReference(f"the store has no reference model: {HOW_TO_ADD_A_REFERENCE}")
    return frame["model_id"][0]
