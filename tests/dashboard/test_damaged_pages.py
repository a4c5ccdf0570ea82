"""A damaged or hostile store never crashes a page: each page that needs the damaged file names it and
says what is wrong, the pages that do not need it keep working, and no manifest value makes a page
allocate without limit. Store text is shown as text (inline code), never as Markdown."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.pages import PAGES
from dashboard.text import code
from store import layout
from store.verify import validated_manifest
from testkit.app import APP, CORRUPTIONS, write_embeddings


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, synthetic_store) -> Path:
    """A copy of the session's store of this size with embeddings/ added; tests copy it again to damage."""
    store = synthetic_store(num_models=3, num_samples=20, corruptions=CORRUPTIONS, severities=(1, 3))
    root = Path(shutil.copytree(store, tmp_path_factory.mktemp("pristine") / "study", symlinks=True))
    write_embeddings(root)
    return root


def unescaped(text: str) -> str:
    """Markdown source as a reader sees it (backslash escapes removed)."""
    return re.sub(r"\\(.)", r"\1", text)


def run_page(monkeypatch, root: Path, page: str) -> AppTest:
    monkeypatch.setenv("PRUNESCOPE_STORE", str(root))
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(PAGES[page].script).run()
    assert not app.exception, f"{page}: {app.exception}"
    return app


def errors(app: AppTest) -> str:
    """The page's errors, and its warnings: the Sample page warns when it cannot show the pixels a model saw."""
    return unescaped("\n".join(e.value for e in (*app.error, *app.warning)))


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / layout.MANIFEST
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))
    return damage


def truncate(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / relative if "*" not in relative else sorted(root.glob(relative))[-1]
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def write_bytes(relative: str, payload: bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / relative).write_bytes(payload)
    return damage


def images(array: np.ndarray) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        np.save(root / layout.IMAGES / "clean.npy", array)
    return damage


def last_marker(root: Path) -> Path:
    return sorted((root / layout.COMPLETE).glob("*.json"))[-1]


ALL = tuple(PAGES)
# case -> (damage, the file the message names, what it says, the pages that need the file)
CASES = {
    "manifest without num_classes": (edit_manifest(lambda m: m.pop("num_classes")), "manifest.json",
                                     "num_classes", ALL),
    "manifest without corruptions": (edit_manifest(lambda m: m.pop("corruptions")), "manifest.json",
                                     "corruptions", ALL),
    "manifest without severities": (edit_manifest(lambda m: m.pop("severities")), "manifest.json",
                                    "severities", ALL),
    "text where a number belongs": (edit_manifest(lambda m: m.update(num_samples="many")), "manifest.json",
                                    "num_samples", ALL),
    "text severities": (edit_manifest(lambda m: m.update(severities=["high"])), "manifest.json", "severities",
                        ALL),
    "a billion classes": (edit_manifest(lambda m: m.update(num_classes=1_000_000_000)), "manifest.json",
                          "num_classes", ALL),
    "truncated models.parquet": (truncate(layout.MODELS), "models.parquet", "Parquet", ALL),
    "truncated samples.parquet": (truncate(layout.SAMPLES), "samples.parquet", "Parquet", ALL),
    # the partition of the default selection (the first pruned model on clean images)
    "truncated prediction file": (truncate("predictions/model_id=m01*/corruption=clean/*/part-0.parquet"),
                                  "part-0.parquet", "Parquet",
                                  ("overview", "matrix", "similarity", "predictors", "local", "global", "samples", "sample")),  # PIE, paired tests
    "truncated embedding file": (truncate(f"{layout.EMBEDDINGS}/{layout.SAMPLE_EMBEDDING}"),
                                 f"{layout.EMBEDDINGS}/{layout.SAMPLE_EMBEDDING}", "Parquet", ("embedding",)),
    # the markers only speed up the matrix: with one damaged, the sums come from the files and no page needs it
    "non-JSON completion marker": (lambda root: last_marker(root).write_text("{not json"), layout.COMPLETE,
                                   "not JSON", ()),
    "clean images of the wrong shape": (images(np.zeros((20, 8, 3), np.uint8)), "clean.npy", "shape",
                                        ("sample", "samples")),
    "clean images of the wrong dtype": (images(np.zeros((20, 32, 32, 3), np.float32)), "clean.npy", "float32",
                                        ("sample", "samples")),
}


@pytest.mark.slow  # large AppTest: every page of the app, once per damage
@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_file_is_named_on_the_pages_that_need_it_and_the_others_work(monkeypatch, tmp_path, pristine,
                                                                              case) -> None:
    damage, file, fault, needing = CASES[case]
    root = shutil.copytree(pristine, tmp_path / "study")
    damage(root)
    for page in PAGES:
        app = run_page(monkeypatch, root, page)
        if page in needing:
            assert file in errors(app) and fault in errors(app), f"{page}: {errors(app)!r}"
            assert str(tmp_path) not in errors(app)  # hosted: the store's name, not the server's path
        else:
            assert not app.error, f"{page}: {errors(app)!r}"
            assert app.title and app.title[0].value, page


def test_a_billion_classes_is_refused_by_the_manifest_check_before_any_page_allocates(pristine, tmp_path) -> None:
    root = shutil.copytree(pristine, tmp_path / "copy")
    manifest = json.loads((root / layout.MANIFEST).read_text())
    assert validated_manifest(root, images=False) == manifest
    for change, message in (({"num_classes": 1_000_000_000}, r"'num_classes' must be an integer in 1..100000"),
                            ({"num_samples": 21}, r"'num_samples' is 21, but .*samples.parquet holds 20 rows")):
        (root / layout.MANIFEST).write_text(json.dumps({**manifest, **change}))
        with pytest.raises(layout.StoreError, match=message):
            validated_manifest(root, images=False)


HOSTILE = "![x](http://example.invalid/a.png) <img src=x> `tick` [link](http://example.invalid)"


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_store_text_is_shown_as_inline_code_never_as_markdown(monkeypatch, tmp_path, pristine) -> None:
    root = shutil.copytree(pristine, tmp_path / "study")
    edit_manifest(lambda m: m.update(class_names=[HOSTILE] * 10, dataset=HOSTILE))(root)
    app = run_page(monkeypatch, root, "sample")
    body = "\n".join(m.value for m in app.markdown)
    assert code(HOSTILE) in body
    assert body.replace(code(HOSTILE), "").count("](") == 0  # no link or image outside the code span
    overview = run_page(monkeypatch, root, "overview")
    assert code(HOSTILE) in overview.caption[0].value


@pytest.mark.parametrize("value", ["`", "a``b", "line\n\n![x](http://example.invalid/a.png)", "` ![x](y) `", ""])
def test_inline_code_cannot_be_closed_early(value) -> None:
    shown = code(value)
    fence = re.match(r"`+", shown).group()
    inner = shown[len(fence):-len(fence)]
    assert shown.endswith(fence) and fence not in inner and "\n" not in shown
    assert max((len(run) for run in re.findall("`+", inner)), default=0) < len(fence)


def test_a_damaged_marker_costs_a_scan_and_the_matrix_stays_the_same(tmp_path, pristine) -> None:
    from analysis import matrices
    from store.catalog import Catalog

    root = shutil.copytree(pristine, tmp_path / "study")
    last_marker(root).write_text("{not json")
    order = ["model_id", "corruption", "severity"]
    expected = matrices.accuracy_matrix(Catalog(pristine)).sort(order)
    assert matrices.accuracy_matrix(Catalog(root)).sort(order).equals(expected)
