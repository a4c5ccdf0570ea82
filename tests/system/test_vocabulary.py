"""store.vocabulary is the one owner of the corruption vocabulary: compute, the report and the dashboard use
its families (brightness is a weather corruption everywhere, as in Hendrycks & Dietterich 2019), and no
other module writes its own corruption -> family mapping."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from analysis import report
from compute import corruptions
from store import layout, vocabulary
from store.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("store", "analysis", "compute", "dashboard", "testkit", "bench")


def test_the_vocabulary_follows_the_reference() -> None:
    names = vocabulary.CORRUPTION_NAMES
    assert len(names) == 19 and names[:15] == vocabulary.COMMON_CORRUPTIONS
    assert names[15:] == vocabulary.EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    members = [name for family in vocabulary.FAMILIES.values() for name in family]
    assert sorted(members) == sorted(names) and len(members) == len(set(members))
    assert vocabulary.FAMILIES["weather"] == ("snow", "frost", "fog", "brightness", "spatter")
    assert vocabulary.CORRUPTIONS["brightness"].family == vocabulary.WEATHER
    abbreviations = [c.abbreviation for c in vocabulary.CORRUPTIONS.values()]
    assert len(set(abbreviations)) == len(abbreviations)


def test_compute_names_the_vocabularys_corruptions_each_in_its_familys_module() -> None:
    assert corruptions.NAMES is vocabulary.CORRUPTION_NAMES
    assert tuple(corruptions.REGISTRY) == vocabulary.CORRUPTION_NAMES
    misplaced = {name: function.__module__ for name, function in corruptions.REGISTRY.items()
                 if function.__module__ != f"compute.corruptions.{vocabulary.CORRUPTIONS[name].family}"}
    assert misplaced == {}


def test_the_report_pools_brightness_with_the_weather_corruptions(synthetic_store) -> None:
    store = synthetic_store(num_models=2, num_samples=30, corruptions=("brightness", "fog", "contrast"),
                            severities=(1,))
    table = report.report_table(Catalog(store), "model")
    mean = {(row["row"], row["column_name"]): row["mean"] for row in table.iter_rows(named=True)}
    rows = set(table["row"].to_list())
    assert rows and {c for _, c in mean} >= {report.family_column("weather"), report.family_column("digital")}
    for row in rows:
        weather = (mean[(row, "brightness")] + mean[(row, "fog")]) / 2  # same samples in each setting
        assert mean[(row, report.family_column("weather"))] == pytest.approx(weather)
        assert mean[(row, report.family_column("digital"))] == pytest.approx(mean[(row, "contrast")])


def _own_family_mappings(path: Path) -> list[int]:
    """The lines of dict literals in `path` that map corruption names to family names or the other way round."""
    families, names = set(vocabulary.FAMILY_NAMES), set(vocabulary.CORRUPTION_NAMES)

    def strings(node: ast.AST | None) -> set[str]:
        return {sub.value for sub in ast.walk(node) if isinstance(sub, ast.Constant) and isinstance(sub.value, str)} \
            if node is not None else set()

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Dict):
            keys = set().union(*(strings(key) for key in node.keys))
            values = set().union(*(strings(value) for value in node.values))
            if (keys & names and values & families) or (keys & families and values & names):
                found.append(node.lineno)
    return found


def test_no_module_but_the_vocabulary_maps_corruptions_to_families() -> None:
    own = [f"{path.relative_to(ROOT)}:{line}" for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
           if path != ROOT / "store" / "vocabulary.py" for line in _own_family_mappings(path)]
    assert own == []


def test_the_family_scan_finds_a_mapping_written_by_hand(tmp_path) -> None:
    """The scan above can fail: both shapes the project once had are found."""
    source = tmp_path / "old.py"
    source.write_text('A = {"brightness": ("digital", "Bright")}\nB = {"weather": ("snow", "fog")}\nC = {"a": "fog"}\n')
    assert _own_family_mappings(source) == [1, 2]


def test_store_images_have_one_check_with_one_message() -> None:
    assert layout.images_problem((4, 32, 32, 3), "uint8", count=4, size=32) is None
    assert layout.images_problem((4, 32, 32), "uint8") == (
        "holds dtype uint8 of shape (4, 32, 32), expected (N, H, W, 3) uint8 images")
    assert "expected (5, 32, 32, 3)" in layout.images_problem((4, 32, 32, 3), "uint8", count=5, size=32)
    assert "at least 9 rows" in layout.images_problem((4, 32, 32, 3), "uint8", rows=9)


@pytest.mark.parametrize(("text", "valid"), [("m00-dense-0", True), ("lrr.90_s1", True), ("a__b", False),
                                             ("-a", False), ("a/b", False), ("", False), (3, False)])
def test_one_model_id_rule(text, valid) -> None:
    assert vocabulary.is_model_id(text) is valid


def test_orders_and_literals() -> None:
    assert vocabulary.MODEL_ORDER == "method <> 'dense', method, target_sparsity, model_id"
    assert vocabulary.model_order("m.seed", table="m") == "m.method <> 'dense', m.method, m.target_sparsity, m.seed"
    assert vocabulary.setting_order("p") == "p.corruption <> 'clean', p.corruption, p.severity"
    assert vocabulary.sql_literal("it's") == "'it''s'"
    assert [vocabulary.is_severity(v) for v in (1, 5, 0, 6, True, 2.0, "3")] == [True, True] + [False] * 5
