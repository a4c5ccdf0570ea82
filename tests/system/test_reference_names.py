"""No identifier, column or label says "dense" where it means the reference (issue 26).

A model is compared with its reference: its base, or the chosen reference (`models.reference_model_id`),
often not a dense model. So the reference's columns, metrics and labels say "reference" (`reference_correct`,
`drop_vs_reference`, "accuracy drop vs reference"); "dense" stays only where it means an unpruned model.

The test reads every module of store/, analysis/, compute/, dashboard/ and testkit/ with ast: every
identifier (names, attributes, definitions, arguments, keywords, imports) and every word of every string
literal (SQL, column lists, labels, docstrings) that contains "dense" must be named in ALLOWED, at the
place it is used, with the reason it means unpruned there. And no string says "vs dense" or the like.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("store", "analysis", "compute", "dashboard", "testkit")
WORD = re.compile(r"[A-Za-z0-9_]*dense[A-Za-z0-9_]*", re.IGNORECASE)
# Prose that pairs a model with "dense" (the reference's old name) wherever it is written.
COMPARED_WITH_DENSE = re.compile(r"\b(?:vs\.?|versus|against|relative to|compared with|paired with|divided by)\s+"
                                 r"(?:the\s+|its\s+|each\s+|their\s+)?(?:own\s+)?dense\b", re.IGNORECASE)

UNPRUNED = "the method name of the unpruned model ('dense') or prose about it"
SORT = "the dense-first model order (method <> 'dense'), and the unpruned method's name"
TRAINING = "training and pruning: the unpruned model a pruned one starts from"

# (a module, or a package folder ending in "/", of the source tree; a word containing "dense") -> why it
# means an unpruned model there. Identifiers and string words alike; a word is allowed at a place when an
# entry names the place or a folder above it.
ALLOWED: dict[tuple[str, str], str] = {
    # compute: training, pruning, extraction and corruptions, where "dense" is never the reference
    ("compute/", "dense"): TRAINING,
    ("compute/", "dense_run"): TRAINING,
    ("compute/", "dense_record"): "the run record of the unpruned model's training",
    ("compute/", "dense_path"): "the checkpoint file of the unpruned model",
    ("compute/", "dense_paths"): "the checkpoint files of the unpruned models",
    ("compute/", "_dense_start"): "where a study's pruning starts: the unpruned model's checkpoint",
    ("compute/", "dense_epochs"): "epochs of the unpruned model's training",
    ("compute/", "train_dense"): "trains the unpruned model",
    ("compute/", "fit_dense"): "fits the unpruned model",
    ("compute/", "from_dense"): "a pruning method that starts from the unpruned model",
    ("compute/", "uses_dense"): "whether a method starts from the unpruned model",
    ("compute/corruptions/_filters.py", "DENSE_AXIS_FRACTION"): "a dense (not sparse) matrix, not a model",
    ("compute/corruptions/_filters.py", "dense_axis_matrix"): "a dense (not sparse) matrix, not a model",
    # the rest: the method name, the dense-first sort order, prose about unpruned models
    ("store/layout.py", "dense"): "FILTER_COLUMNS: 'method' is 'dense' for the unpruned model",
    ("store/vocabulary.py", "dense"): "UNPRUNED: the method name of the unpruned model, first in every order",
    ("store/bases.py", "dense"): "the legacy base rule: the dense model of the arch, filled by compute migrate",
    ("analysis/filters.py", "dense"): "a filter example: method <> 'dense' (the pruned models)",
    ("analysis/filters.py", "dense_correct"): "deprecated alias of reference_correct, accepted for one release",
    ("analysis/filters.py", "dense_feature_norm"): "deprecated alias of reference_feature_norm, for one release",
    ("analysis/filters.py", "dense_angle_true"): "deprecated alias of reference_angle_true, for one release",
    ("analysis/filters.py", "dense_margin"): "deprecated alias of reference_margin, for one release",
    ("analysis/queries.py", "dense"): SORT,
    ("dashboard/charts/", "dense"): "the palette's and labels' unpruned method; its point starts every "
                                      "method's sparsity line; the dense-first order",
    ("testkit/study.py", "dense"): "the synthetic study's unpruned model",
    ("testkit/synthetic.py", "dense"): "the synthetic store's unpruned models, and extraction's base rule",
}


def _places(path: Path) -> list[str]:
    """The module's path and every folder above it, as ALLOWED names them."""
    relative = path.relative_to(ROOT).as_posix()
    parts = relative.split("/")
    return [relative, *("/".join(parts[:end]) + "/" for end in range(1, len(parts)))]


def _words(node: ast.AST) -> list[str]:
    """The identifiers a node names, or the "dense" words of a string literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return WORD.findall(node.value)
    names = {ast.Name: lambda n: [n.id], ast.Attribute: lambda n: [n.attr], ast.arg: lambda n: [n.arg],
             ast.keyword: lambda n: [n.arg or ""], ast.alias: lambda n: [n.name, n.asname or ""],
             ast.FunctionDef: lambda n: [n.name], ast.AsyncFunctionDef: lambda n: [n.name],
             ast.ClassDef: lambda n: [n.name]}
    found = names.get(type(node))
    return [name for name in found(node) if "dense" in name.lower()] if found else []


def dense_words() -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """((module, word) -> lines) for every "dense" word of the scanned packages, and the lines whose
    strings compare with "dense"."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    phrases = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), module)):
                for word in _words(node):
                    found[(module, word)].append(f"{module}:{node.lineno}")
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    phrases += [f"{module}:{node.lineno}: {m.group(0)!r}" for m in COMPARED_WITH_DENSE.finditer(node.value)]
    return found, phrases


FOUND, PHRASES = dense_words()


def allowed(module: str, word: str) -> bool:
    return any((place, word) in ALLOWED for place in _places(ROOT / module))


def test_no_identifier_column_or_label_says_dense_for_the_reference() -> None:
    offending = sorted(f"{lines[0]}: {word!r}" for (module, word), lines in FOUND.items() if not allowed(module, word))
    assert not offending, ("'dense' where it may mean the reference (say reference_*, or add the place to "
                           "ALLOWED with why it means an unpruned model there):\n" + "\n".join(offending))


def test_no_label_compares_with_dense() -> None:
    assert not PHRASES, "labels comparing with 'dense' (the reference):\n" + "\n".join(PHRASES)


def test_every_allowed_place_still_says_it() -> None:
    """An entry nothing uses any more is removed, so the list stays the list of places."""
    used = {(place, word) for (module, word) in FOUND for place in _places(ROOT / module)}
    assert not sorted(set(ALLOWED) - used)


def test_the_scan_sees_identifiers_strings_and_sql_columns() -> None:
    """The scanner would catch the old names coming back: as a column in SQL, a name, a key and a label."""
    source = '''
SQL = "SELECT d.margin AS dense_margin FROM rows"
def drop_vs_dense(dense_value): return {"dense_correct": dense_value}
LABEL = "accuracy drop vs dense"
'''
    tree = ast.parse(source)
    words = {word for node in ast.walk(tree) for word in _words(node)}
    assert {"dense_margin", "drop_vs_dense", "dense_value", "dense_correct"} <= words
    assert not any(allowed("analysis/queries.py", word) for word in words - {"dense"})
    assert COMPARED_WITH_DENSE.search(source)
