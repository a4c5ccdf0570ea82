"""`verify` names every problem of a damaged store and never raises; `validated_manifest` bounds manifest
values by the files; `python -m compute verify` prints the problems and exits 1 (0 when clean, 2 on usage)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store import layout, reader
from store.verify import validated_manifest, verify

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = 40


@pytest.fixture
def store(synthetic_store, pristine_copy, tmp_path) -> Path:
    """A fresh copy of a clean synthetic store, to damage."""
    return pristine_copy(synthetic_store(num_models=2, num_samples=SAMPLES, corruptions=("fog",), severities=(1, 3)),
                         tmp_path / "store")


def edit_manifest(store: Path, **changes) -> Path:
    path = store / layout.MANIFEST
    manifest = json.loads(path.read_text())
    for key, value in changes.items():
        if value is DROP:
            del manifest[key]
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))
    return path


DROP = object()


# Each damage: what it does to the store, the file verify must name, and a phrase of its message.
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DAMAGES: dict[str, tuple[Callable[[Path], object], str, str]] = {
    "missing num_classes": (lambda s: edit_manifest(s, num_classes=DROP), layout.MANIFEST, "'num_classes'"),
    "text where a number belongs": (lambda s: edit_manifest(s, num_samples="forty"), layout.MANIFEST,
                                    "'num_samples'"),
    "a billion classes": (lambda s: edit_manifest(s, num_classes=1_000_000_000), layout.MANIFEST, "'num_classes'"),
    "num_classes contradicts class_names": (lambda s: edit_manifest(s, num_classes=11), layout.MANIFEST,
                                            "class_names holds 10"),
    "num_samples contradicts samples.parquet": (lambda s: edit_manifest(s, num_samples=SAMPLES + 1),
                                                layout.MANIFEST, f"holds {SAMPLES} rows"),
    "missing corruptions": (lambda s: edit_manifest(s, corruptions=DROP), layout.MANIFEST, "'corruptions'"),
    "severity 9": (lambda s: edit_manifest(s, severities=[1, 9]), layout.MANIFEST, "'severities'"),
    "image_size contradicts the images": (lambda s: edit_manifest(s, image_size=28), "images/clean.npy",
                                          "expected (40, 28, 28, 3)"),
    "manifest not JSON": (lambda s: (s / layout.MANIFEST).write_text("{nope"), layout.MANIFEST, "not valid JSON"),
    "truncated models.parquet": (lambda s: _truncate(s / layout.MODELS), layout.MODELS, "not a readable Parquet"),
    "truncated samples.parquet": (lambda s: _truncate(s / layout.SAMPLES), layout.SAMPLES,
                                  "not a readable Parquet"),
    "samples.parquet of another schema": (
        lambda s: pq.write_table(pa.table({"sample_id": pa.array(range(SAMPLES), pa.int64())}), s / layout.SAMPLES),
        layout.SAMPLES, "lacks column(s)"),
    "truncated prediction file": (
        lambda s: _truncate(reader.partition_file(s, "m01-ft-50", "fog", 3)),
        "predictions/model_id=m01-ft-50/corruption=fog/severity=3/part-0.parquet", "not a readable Parquet"),
    "marker not JSON": (lambda s: (s / layout.COMPLETE / "m00-dense-0__fog__1.json").write_text("rows: 40"),
                        "_complete/m00-dense-0__fog__1.json", "not JSON"),
    "marker with wrong keys": (lambda s: (s / layout.COMPLETE / "m00-dense-0__fog__1.json").write_text('{"n": 1}'),
                               "_complete/m00-dense-0__fog__1.json", "integer 'rows' and 'bytes'"),
    "clean.npy of the wrong dtype": (
        lambda s: np.save(s / layout.IMAGES / "clean.npy", np.zeros((SAMPLES, 32, 32, 3), np.float32)),
        "images/clean.npy", "dtype float32"),
    "clean.npy of the wrong shape": (
        lambda s: np.save(s / layout.IMAGES / "clean.npy", np.zeros((SAMPLES, 32, 32), np.uint8)),
        "images/clean.npy", "shape (40, 32, 32)"),
    "clean.npy of one dimension": (lambda s: np.save(s / layout.IMAGES / "clean.npy", np.zeros(SAMPLES, np.uint8)),
                                   "images/clean.npy", "shape (40,)"),
    "truncated clean.npy": (lambda s: _truncate(s / layout.IMAGES / "clean.npy"), "images/clean.npy", "truncated"),
    "images other than clean.npy": (
        lambda s: np.save(s / layout.IMAGES / "fog_1.npy", np.zeros((SAMPLES, 32, 32, 3), np.uint8)),
        "images/fog_1.npy", "unexpected file"),
    "partition directory of an unknown corruption": (
        lambda s: reader.partition_file(s, "m00-dense-0", "fog", 1).parent.rename(
            s / layout.PREDICTIONS / "model_id=m00-dense-0" / "corruption=fog" / "severity=4"),
        "predictions/model_id=m00-dense-0/corruption=fog/severity=4/part-0.parquet", "severity=4 is not among"),
    "partition directory without key=value": (
        lambda s: (s / layout.PREDICTIONS / "model_id=m00-dense-0").rename(s / layout.PREDICTIONS / "m00-dense-0"),
        "predictions/m00-dense-0/corruption=clean/severity=0/part-0.parquet", "unexpected file"),
    "embedding of another schema": (
        lambda s: (s / layout.EMBEDDINGS).mkdir() or pq.write_table(pa.table({"x": [1.0]}),
                                                                    s / layout.EMBEDDINGS / layout.MODEL_TREE),
        "embeddings/mst.parquet", "lacks column(s)"),
    "truncated by-sample index": (lambda s: (s / "index").mkdir() or (s / "index" / "by_sample.parquet").write_bytes(
        b"PAR1"), "index/by_sample.parquet", "not a readable Parquet"),
}


def test_a_clean_store_has_no_problems_and_its_manifest_validates(store) -> None:
    assert verify(store) == []
    manifest = validated_manifest(store)
    assert manifest["num_classes"] == 10 and manifest["num_samples"] == SAMPLES and manifest["severities"] == [1, 3]


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_verify_names_the_damaged_file_and_never_raises(store, case) -> None:
    damage, relative, phrase = DAMAGES[case]
    damage(store)
    problems = verify(store)
    named = [p for p in problems if p.path == store / relative]
    assert named, [str(p) for p in problems]
    assert any(phrase in p.message for p in named), [str(p) for p in named]


@pytest.mark.parametrize("case", [c for c in sorted(DAMAGES) if DAMAGES[c][1] == layout.MANIFEST
                                  or DAMAGES[c][1] == "images/clean.npy"])
def test_validated_manifest_refuses_what_the_files_contradict_naming_file_and_key(store, case) -> None:
    damage, relative, phrase = DAMAGES[case]
    damage(store)
    with pytest.raises(layout.StoreError) as raised:
        validated_manifest(store)
    assert str(store / relative) in str(raised.value) and phrase in str(raised.value)


def test_a_billion_classes_never_reach_a_reader(store) -> None:
    edit_manifest(store, num_classes=1_000_000_000, class_names=[f"c{i}" for i in range(10)])
    with pytest.raises(layout.StoreError, match="'num_classes' must be an integer in 1..100000"):
        validated_manifest(store)


def test_verify_reports_every_problem_at_once(store) -> None:
    for case in ("text where a number belongs", "truncated models.parquet", "marker not JSON",
                 "truncated prediction file"):
        DAMAGES[case][0](store)
    paths = {p.path for p in verify(store)}
    assert {store / DAMAGES[c][1] for c in ("text where a number belongs", "truncated models.parquet",
                                            "marker not JSON", "truncated prediction file")} <= paths


def test_a_directory_that_is_not_a_store_is_one_problem(tmp_path) -> None:
    assert [p.view for p in verify(tmp_path)] == ["manifest"]
    (tmp_path / "file").write_text("x")
    assert "it is a file" in verify(tmp_path / "file")[0].message


def test_verify_command_prints_each_problem_and_exits_1(store, cli) -> None:
    clean = cli("verify", "--store", str(store))
    assert clean.returncode == 0 and "no problems" in clean.stdout, clean.stderr
    DAMAGES["marker not JSON"][0](store)
    DAMAGES["truncated samples.parquet"][0](store)
    damaged = cli("verify", "--store", str(store), "--quick")
    assert damaged.returncode == 1, damaged.stderr
    lines = damaged.stdout.splitlines()
    assert any(line.startswith(f"{store / layout.SAMPLES}: ") for line in lines), lines
    assert any(line.startswith(f"{store / layout.COMPLETE / 'm00-dense-0__fog__1.json'}: not JSON") for line in lines)
    assert "Traceback" not in damaged.stderr


def test_verify_command_usage_error_exits_2(cli) -> None:
    result = cli("verify")
    assert result.returncode == 2 and "--store" in result.stderr


@pytest.mark.parametrize("damage", [b"PAR1", b"[1, 2]"])
def test_a_damaged_by_sample_index_is_stale_not_fatal(store, damage) -> None:
    from store import derived, sample_index
    from store.catalog import Catalog

    derived.build_sample_index(store)
    assert sample_index.is_fresh(store)
    target = store / layout.INDEX / (layout.BY_SAMPLE if damage == b"PAR1" else layout.BY_SAMPLE_RECORD + ".json")
    target.write_bytes(damage)
    assert not sample_index.is_fresh(store)
    catalog = Catalog(store)  # falls back to the prediction files
    assert catalog.by_sample == "predictions"
    catalog.close()
    derived.build_sample_index(store)  # and `compute index` rewrites it
    assert sample_index.is_fresh(store)


@pytest.mark.parametrize("case", ["marker not JSON", "truncated prediction file", "truncated models.parquet"])
def test_index_refuses_a_damaged_store_naming_the_file(store, case, cli) -> None:
    damage, relative, phrase = DAMAGES[case]
    damage(store)
    result = cli("index", "--store", str(store))
    assert result.returncode == 2 and result.stderr.startswith("error: "), result.stderr
    assert f"{store / relative}: " in result.stderr and phrase in result.stderr and "Traceback" not in result.stderr
    assert not (store / "index").exists()


FILES = [layout.MANIFEST, layout.SAMPLES, layout.MODELS, "images/clean.npy",
         "predictions/model_id=m00-dense-0/corruption=fog/severity=1/part-0.parquet",
         "_complete/m00-dense-0__fog__1.json"]


@pytest.mark.parametrize("content", ["empty", "random bytes", "a directory"])
@pytest.mark.parametrize("relative", FILES)
def test_any_file_replaced_by_garbage_is_named_never_raised(store, relative, content) -> None:
    path = store / relative
    path.unlink()
    if content == "a directory":
        path.mkdir()
    else:
        path.write_bytes(b"" if content == "empty" else np.random.default_rng(0).bytes(3000))
    problems = verify(store)
    assert any(p.path == path for p in problems), [str(p) for p in problems]
