"""Classes on the pages of a study with many: which classes a per-class view shows (a searchable picker
above MAX_CLASS_PANELS classes) and class names beside class indices in tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import streamlit as st

from analysis import queries
from dashboard.data import query
from store.catalog import Catalog

MAX_CLASS_PANELS = 20  # more classes than this: the user picks which to show
FIRST_CLASSES = 10  # classes a per-class view starts with on a study with too many to show at once
CLASS_COLUMNS = ("label", "pred", "pred_b", "reference_modal_pred", "pruned_modal_pred")  # class indices in tables


def largest_classes(catalog: Catalog, count: int = FIRST_CLASSES) -> list[str]:
    """The names of the `count` classes with the most test samples (ties: in class order)."""
    labels = query(queries.samples, catalog)["label"]
    sizes = labels.value_counts().sort(["count", "label"], descending=[True, False])
    return [catalog.manifest["class_names"][int(c)] for c in sizes["label"].head(count)]


def class_filter(catalog: Catalog) -> list[int] | None:
    """The classes a per-class view shows: all (None) for up to MAX_CLASS_PANELS classes, else the ones
    the user picks in a searchable picker (the ten largest classes to begin with)."""
    names = catalog.manifest["class_names"]
    if len(names) <= MAX_CLASS_PANELS:
        return None
    chosen = st.multiselect("Classes", names, default=largest_classes(catalog), key="classes",
                            persist_state="session", placeholder="type to search the classes",
                            help=f"this study has {len(names)} classes: type part of a name to find one; "
                                 f"the page starts with the {FIRST_CLASSES} largest")
    index = {name: c for c, name in enumerate(names)}
    return [index[name] for name in chosen]


def with_class_names(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """`frame` with a `<column>_name` column beside each class-index column (CLASS_COLUMNS) that lacks one,
    so tables name classes, not indices."""
    lookup = dict(enumerate(names))
    added = [pl.col(c).cast(pl.Int64).replace_strict(lookup, default=None, return_dtype=pl.String).alias(f"{c}_name")
             for c in CLASS_COLUMNS if c in frame.columns and f"{c}_name" not in frame.columns]
    if not added:
        return frame
    named = frame.with_columns(added)
    order: list[str] = []
    for column in frame.columns:  # each name right after its index
        order.append(column)
        if column in CLASS_COLUMNS and f"{column}_name" in named.columns and f"{column}_name" not in frame.columns:
            order.append(f"{column}_name")
    return named.select(order + [c for c in named.columns if c not in order])
