"""The project's small vocabularies, each written once: every other module imports them from here.

- the 19 corruptions of CIFAR-10-C, Tiny-ImageNet-C and ImageNet-C (Hendrycks & Dietterich, ICLR 2019) in
  their canonical order (reference/cifar10c.md), each with its family, its abbreviation in the paper's
  tables and whether it is one of the 15 common ones (the other 4 were held out for validation);
- the severities 1..5, the replicate levels (a group of seeds, or one model) and the store's view names;
- the order models and settings are listed in, as SQL and as sort keys;
- names that become directory names (corruptions, model ids) and SQL string literals.

The store's file names and schemas are store.layout's.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from pathlib import Path

from store.layout import CLEAN

NOISE, BLUR, WEATHER, DIGITAL = "noise", "blur", "weather", "digital"
FAMILY_NAMES: tuple[str, ...] = (NOISE, BLUR, WEATHER, DIGITAL)


@dataclass(frozen=True)
class Corruption:
    """One corruption: its family and abbreviation as Hendrycks & Dietterich 2019 give them (brightness is a
    weather corruption there), and whether it is one of the 15 common corruptions of the benchmark figure."""

    name: str
    family: str
    abbreviation: str
    common: bool


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("gaussian_noise", NOISE, "Gauss", True),
    Corruption("shot_noise", NOISE, "Shot", True),
    Corruption("impulse_noise", NOISE, "Impul", True),
    Corruption("defocus_blur", BLUR, "Defoc", True),
    Corruption("glass_blur", BLUR, "Glass", True),
    Corruption("motion_blur", BLUR, "Motion", True),
    Corruption("zoom_blur", BLUR, "Zoom", True),
    Corruption("snow", WEATHER, "Snow", True),
    Corruption("frost", WEATHER, "Frost", True),
    Corruption("fog", WEATHER, "Fog", True),
    Corruption("brightness", WEATHER, "Bright", True),
    Corruption("contrast", DIGITAL, "Contr", True),
    Corruption("elastic_transform", DIGITAL, "Elast", True),
    Corruption("pixelate", DIGITAL, "Pixel", True),
    Corruption("jpeg_compression", DIGITAL, "JPEG", True),
    Corruption("speckle_noise", NOISE, "Speck", False),
    Corruption("gaussian_blur", BLUR, "GBlur", False),
    Corruption("spatter", WEATHER, "Spat", False),
    Corruption("saturate", DIGITAL, "Sat", False),
)}
# The canonical order: the 15 common corruptions, then the 4 held out for validation in the paper.
CORRUPTION_NAMES: tuple[str, ...] = tuple(CORRUPTIONS)
COMMON_CORRUPTIONS: tuple[str, ...] = tuple(name for name, c in CORRUPTIONS.items() if c.common)
EXTRA_CORRUPTIONS: tuple[str, ...] = tuple(name for name, c in CORRUPTIONS.items() if not c.common)
# Family -> its corruptions in canonical order.
FAMILIES: dict[str, tuple[str, ...]] = {
    family: tuple(name for name, c in CORRUPTIONS.items() if c.family == family) for family in FAMILY_NAMES}

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def is_severity(value: object) -> bool:
    """`value` is one of SEVERITIES as an integer (Python's or numpy's; not a bool, not a float)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value in SEVERITIES


# The store's views: what reads a group of its files (a page names those it reads; verify checks them). The
# catalog's own views come first; images and the index are read beside it.
CATALOG_VIEWS: tuple[str, ...] = ("samples", "models", "predictions", "embeddings", "layers")
VIEWS: tuple[str, ...] = (*CATALOG_VIEWS, "images", "index")

# Replicate levels: a row per group of replicates (the mean over seeds) or per model.
LEVELS: tuple[str, ...] = ("group", "model")

# The model order everywhere models are listed: unpruned models first, then by MODEL_SORT.
UNPRUNED = "dense"  # the method of an unpruned model
MODEL_SORT: tuple[str, ...] = ("method", "target_sparsity")
# Operations that store weights in fewer bits without removing any (compute.quantize): a model made only by
# them is not pruned. A chain's method joins its steps with "+" (`channel+int8`: channel pruning, then int8).
QUANTIZATIONS: tuple[str, ...] = ("int8",)
# What a method's target sparsity counts where it is not weights: channel pruning removes whole output
# channels (and with them more than that share of the weights).
TARGET_UNITS: dict[str, str] = {"channel": "channels"}


def is_pruned(method: str) -> bool:
    """Whether a model of this method (a chain's steps joined by "+") has weights removed: some step is
    neither the unpruned model nor a quantization."""
    return any(step not in (UNPRUNED, *QUANTIZATIONS) for step in method.split("+"))


def model_order(*then: str, table: str = "") -> str:
    """SQL ORDER BY terms listing models in the model order, ties broken by the terms `then`; `table`
    qualifies the columns (`m` -> m.method)."""
    prefix = f"{table}." if table else ""
    return ", ".join([f"{prefix}method <> '{UNPRUNED}'", *(prefix + column for column in MODEL_SORT), *then])


def setting_order(table: str = "") -> str:
    """SQL ORDER BY terms listing settings: clean first, then by corruption name and severity."""
    prefix = f"{table}." if table else ""
    return f"{prefix}corruption <> '{CLEAN}', {prefix}corruption, {prefix}severity"


MODEL_ORDER = model_order("model_id")
SETTING_ORDER = setting_order()

# A name that is also a directory name (a corruption, a model id): letters, digits, '.', '-', '_'.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_model_id(value: object) -> bool:
    """A model id: a NAME without '__' (which separates the parts of a completion marker's file name)."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None and "__" not in value


def sql_literal(value: str | Path) -> str:
    """A text (or a file path) as an SQL string literal, for the places that take no bound parameter: a
    table function in a view body, a value composed into a filter expression (the same quoting)."""
    return "'" + str(value).replace("'", "''") + "'"
