"""Provenance: every extraction records how each setting's images were made, refuses to mix other images
into a setting, and `compute.pixels.image` returns exactly the pixels the model saw (checked against the
model itself), or a StoreError that the Sample page shows."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis import queries
from compute import checkpoint, corruptions, datasets, pixels
from dashboard.pages import PAGES
from store import layout, provenance, reader, sample_index, verify
from store.catalog import Catalog
from testkit.datasets import write_cifar10c
from testkit.extraction import CORRUPTIONS, LIMIT, SEVERITIES, extract_args

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PER_SEVERITY = LIMIT + 10  # the fixture files hold more rows per severity than --limit reads
SAMPLES = (0, 17, LIMIT - 1)


@pytest.fixture(autouse=True)
def allowed(monkeypatch, tmp_path_factory) -> None:
    """The published files and trees these tests extract from lie under pytest's temporary directory: the
    operator allows it (store.confine), as a server reading `--corrupted-dir` files must."""
    monkeypatch.setenv("PRUNESCOPE_ALLOW_ROOTS", str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="module")
def run_extract(cli) -> Callable[..., tuple[int, str, str]]:
    """`compute extract` of the tiny test setting, in this process: (exit code, stdout, stderr)."""

    def run(store: Path, checkpoints: list[Path], *extra: str) -> tuple[int, str, str]:
        result = cli(*extract_args(store, checkpoints, *extra))
        return result.returncode, result.stdout, result.stderr

    return run


@pytest.fixture(scope="module")
def seed3(tmp_path_factory, checkpoints, run_extract) -> Path:
    store = tmp_path_factory.mktemp("seed3") / "store"
    code, _, err = run_extract(store, checkpoints[:1], "--seed", "3")
    assert code == 0, err
    return store


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    labels = datasets.load("digits").test.labels[:PER_SEVERITY]
    return write_cifar10c(tmp_path_factory.mktemp("published") / "CIFAR-10-C", CORRUPTIONS, labels=labels)


@pytest.fixture(scope="module")
def from_files(tmp_path_factory, checkpoints, published, run_extract) -> Path:
    store = tmp_path_factory.mktemp("files") / "store"
    code, _, err = run_extract(store, checkpoints[:1], "--corrupted-dir", str(published.directory))
    assert code == 0, err
    return store


def assert_model_saw(store: Path, corruption: str, severity: int, images: dict[int, np.ndarray]) -> None:
    """The stored prediction and feature norm of each sample are what the model makes of `images`."""
    (row,) = queries.models(Catalog(store)).iter_rows(named=True)
    model, _ = checkpoint.load(row["checkpoint"])
    catalog = Catalog(store)
    for sample_id, image in images.items():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            features = model.forward_features(x)
            pred = int(model.classifier(features).argmax())
        stored = queries.sample_rows(catalog, sample_id, severity).filter(
            (pl.col("corruption") == corruption) & (pl.col("severity") == severity))
        assert stored["pred"].item() == pred, sample_id
        assert stored["feature_norm"].item() == pytest.approx(float(features.norm()), rel=1e-4), sample_id


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_extraction_records_every_setting_s_provenance(seed3, from_files, published) -> None:
    settings = ["clean/0", *(f"{c}/{s}" for c in CORRUPTIONS for s in SEVERITIES)]
    generated = provenance.read(seed3)
    assert sorted(generated) == sorted(settings)
    assert generated["clean/0"] == provenance.stored(np.load(seed3 / layout.IMAGES / "clean.npy"))
    assert generated["fog/3"] == {"source": "generated", "seed": 3, "implementation": corruptions.IMPLEMENTATION}
    files = provenance.read(from_files)
    start = 2 * PER_SEVERITY
    assert files["fog/3"] == {"source": "files", "path": str((published.directory / "fog.npy").resolve()),
                              "rows": [start, start + LIMIT],
                              "sha256": provenance.sha256(published.images["fog"][start:start + LIMIT])}


def test_a_seed_3_store_regenerates_its_images_with_seed_3(seed3) -> None:
    clean = np.load(seed3 / layout.IMAGES / "clean.npy")
    ids = np.array(SAMPLES)
    expected = corruptions.corrupt(clean[ids], "fog", 3, seed=3, sample_ids=ids)
    seed0 = corruptions.corrupt(clean[ids], "fog", 3, seed=0, sample_ids=ids)
    shown = np.stack([pixels.image(seed3, int(i), "fog", 3) for i in ids])
    assert shown.dtype == np.uint8 and shown.shape == (len(ids), 32, 32, 3)
    assert np.array_equal(shown, expected) and not np.array_equal(shown, seed0)
    assert np.array_equal(pixels.image(seed3, 5, layout.CLEAN, 0), clean[5])
    assert_model_saw(seed3, "fog", 3, dict(zip(SAMPLES, shown, strict=True)))


def test_file_settings_show_the_exact_rows_the_model_read(from_files, published) -> None:
    for corruption, severity in [("fog", 3), ("contrast", 1)]:
        start = (severity - 1) * PER_SEVERITY
        shown = {i: pixels.image(from_files, i, corruption, severity) for i in SAMPLES}
        for i, image in shown.items():
            assert np.array_equal(image, published.images[corruption][start + i]), (corruption, severity, i)
        assert_model_saw(from_files, corruption, severity, shown)


def test_mixing_provenance_is_refused_naming_the_setting_and_both_sources(seed3, from_files, checkpoints,
                                                                        run_extract) -> None:
    markers = sorted(p.name for p in (seed3 / layout.COMPLETE).iterdir())
    manifest = (seed3 / layout.MANIFEST).read_bytes()
    # the default seed 0 into the seed-3 store, a new model and a new corruption
    code, _, err = run_extract(seed3, checkpoints[1:], "--corruptions", *CORRUPTIONS, "snow")
    assert code == 2
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith("error: refusing to mix") and "fog/3" in line
    assert "with seed 3" in line and "with seed 0" in line
    assert sorted(p.name for p in (seed3 / layout.COMPLETE).iterdir()) == markers, "nothing was written"
    assert (seed3 / layout.MANIFEST).read_bytes() == manifest

    code, _, err = run_extract(from_files, checkpoints[1:], "--seed", "0")  # generated into a files store
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "gaussian_noise/1" in line and "fog.npy" in line and "generated by compute.corruptions" in line
    assert not reader.is_complete(from_files, "small1", layout.CLEAN, 0)


@contextlib.contextmanager
def moved(folder: Path) -> Iterator[None]:
    away = folder.with_name(folder.name + "-moved")
    folder.rename(away)
    try:
        yield
    finally:
        away.rename(folder)


@contextlib.contextmanager
def changed(path: Path, row: int) -> Iterator[None]:
    original = path.read_bytes()
    array = np.load(path)
    array[row] = 255 - array[row]
    np.save(path, array)
    try:
        yield
    finally:
        path.write_bytes(original)


def test_a_moved_or_changed_file_is_a_clear_error(from_files, published) -> None:
    fog = published.directory / "fog.npy"
    with moved(published.directory), pytest.raises(layout.StoreError, match="moved or deleted") as error:
        pixels.image(from_files, 0, "fog", 3)
    assert str(fog.resolve()) not in str(error.value) and "fog/3" in str(error.value)  # the setting, not the path
    with changed(fog, 2 * PER_SEVERITY + 7), pytest.raises(layout.StoreError, match="changed since extraction"):
        pixels.image(from_files, 0, "fog", 3)
    with changed(fog, 0):  # another severity's rows: fog/3 is still exactly what the model read
        assert np.array_equal(pixels.image(from_files, 0, "fog", 3), published.images["fog"][2 * PER_SEVERITY])


def test_the_sample_page_shows_why_instead_of_other_pixels(monkeypatch, from_files, published, checkpoints) -> None:
    monkeypatch.setenv("PRUNESCOPE_STORE", str(from_files))
    app = AppTest.from_file(APP, default_timeout=120).run()
    for key, value in {"corruption": "fog", "severity": 3, "model": "small0"}.items():
        app.session_state[key] = value
    app.switch_page(PAGES["sample"].script).run()
    assert not app.exception, app.exception
    assert len(app.get("image")) == 1 and not app.warning
    with moved(published.directory):
        app.run()
        assert not app.exception, app.exception
        assert not app.get("image")
        assert any("moved or deleted" in w.value and "fog/3" in w.value for w in app.warning)
        assert not any(str(published.directory.resolve()) in w.value for w in app.warning)
        assert any("cannot be shown" in i.value for i in app.info), "no attribution on other pixels"


def test_stores_without_a_record_or_of_another_implementation_say_so(seed3, tmp_path) -> None:
    store = tmp_path / "store"
    shutil.copytree(seed3, store)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    manifest[provenance.KEY]["fog/3"]["implementation"] = "prunescope-corruptions/0"
    (store / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(layout.StoreError, match="prunescope-corruptions/0.*cannot be regenerated"):
        pixels.image(store, 0, "fog", 3)
    del manifest[provenance.KEY]  # a store written before provenance was recorded
    (store / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(layout.StoreError, match="records no provenance for fog/1"):
        pixels.image(store, 0, "fog", 1)
    clean = np.load(store / layout.IMAGES / "clean.npy")
    assert np.array_equal(pixels.image(store, 3, layout.CLEAN, 0), clean[3])
    with pytest.raises(layout.StoreError, match="sample 60 is not in"):
        pixels.image(store, LIMIT, layout.CLEAN, 0)


def test_an_older_store_keeps_unknown_settings_unrecorded_and_records_new_ones(seed3, tmp_path) -> None:
    store = tmp_path / "store"
    shutil.copytree(seed3, store)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    del manifest[provenance.KEY]
    (store / layout.MANIFEST).write_text(json.dumps(manifest))
    new = {"snow/1": provenance.generated(0, corruptions.IMPLEMENTATION),
           "fog/3": provenance.generated(0, corruptions.IMPLEMENTATION)}
    assert provenance.record(store, new) == {"snow/1": new["snow/1"]}  # fog/3 has partitions of unknown origin


def test_the_extract_cli_leaves_a_fresh_index(seed3, from_files) -> None:
    assert sample_index.is_fresh(seed3) and sample_index.is_fresh(from_files)


STUDY = """
arch = "small_cnn"
dataset = "digits"
rewind_step = 2
corruptions = ["fog"]
severities = [1]
limit = 40
[dense]
epochs = 1
[finetune]
epochs = 1
lr = 0.01
[methods.ft]
sparsities = [0.5]
[methods.snip]
sparsities = [0.8]
epochs = 1
"""


@pytest.mark.slow
def test_an_edited_study_retrains_and_extracts_only_what_changed(tmp_path, capsys) -> None:
    from compute.__main__ import main

    study, out = tmp_path / "study.toml", tmp_path / "out"
    study.write_text(STUDY)
    assert main(["study", str(study), "--out", str(out), "--device", "cpu"]) == 0
    assert "0 checkpoints kept, 3 to train" in capsys.readouterr().out
    checkpoints = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("*.pt")}
    markers = {p.name: p.stat().st_mtime_ns for p in (out / layout.COMPLETE).glob("*.json")}
    assert len(checkpoints) == 3 and len(markers) == 3 * 2

    study.write_text(STUDY.replace("sparsities = [0.8]\nepochs = 1", "sparsities = [0.8]\nepochs = 2"))
    assert main(["study", str(study), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "2 checkpoints kept (small_cnn-dense-s0, small_cnn-ft-50-s0), 1 to train" in printed
    assert "small_cnn-snip-80-s0: training record changed: schedule.epochs 1 -> 2" in printed
    assert "extracted again (training record changed): small_cnn-snip-80-s0" in printed
    now = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("*.pt")}
    kept = {name for name in checkpoints if name in now and now[name] == checkpoints[name]}
    assert {name.split(".")[0] for name in kept} == {"small_cnn-dense-s0", "small_cnn-ft-50-s0"} and len(now) == 3
    (new_snip,) = set(now) - kept
    assert (out / "checkpoints" / "superseded" / (set(checkpoints) - kept).pop()).is_file()
    after = {p.name: p.stat().st_mtime_ns for p in (out / layout.COMPLETE).glob("*.json")}
    redone = {name.split("__")[0] for name in after if after[name] != markers.get(name)}
    assert redone == {"small_cnn-snip-80-s0"} and set(after) == set(markers)
    row = queries.models(Catalog(out)).filter(pl.col("model_id") == "small_cnn-snip-80-s0").row(0, named=True)
    assert Path(row["checkpoint"]).name == new_snip
    assert sample_index.is_fresh(out)


def test_a_model_extracted_from_another_training_record_is_extracted_again(seed3, tmp_path) -> None:
    store = tmp_path / "store"
    shutil.copytree(seed3, store)
    partitions = len(reader.complete_partitions(store))
    assert provenance.record_training(store, {"small0": None, "absent": "a" * 12}) == []  # untracked, new
    assert len(reader.complete_partitions(store)) == partitions
    # small0's partitions were extracted before any digest was recorded: their origin is unknown
    assert provenance.record_training(store, {"small0": "a" * 12}) == ["small0"]
    assert reader.complete_partitions(store) == [] and not (store / layout.PREDICTIONS / "model_id=small0").exists()
    shutil.rmtree(store)
    shutil.copytree(seed3, store)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    manifest[provenance.TRAINING_KEY] = {"small0": "a" * 12}
    (store / layout.MANIFEST).write_text(json.dumps(manifest))
    assert provenance.record_training(store, {"small0": "a" * 12}) == []  # the same record: kept
    assert len(reader.complete_partitions(store)) == partitions
    assert provenance.record_training(store, {"small0": "b" * 12}) == ["small0"]  # an edited record
    assert reader.complete_partitions(store) == []
    assert json.loads((store / layout.MANIFEST).read_text())[provenance.TRAINING_KEY]["small0"] == "b" * 12


# --- Settings read from a folder tree (image folder, Tiny-ImageNet-C, ImageNet-C) ----------------------

TREE_CLASSES = ("ant", "bee", "cat")
TREE_FILES = ("i0.png", "i1.png", "i2.jpg")
# The copies' sizes: 32 x 32 is used as it is; the others go through the image folder's resize rule.
COPY_SIZES = {"i0.png": (32, 32), "i1.png": (44, 36), "i2.jpg": (40, 40)}


def noise_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **({"quality": 90} if path.suffix == ".jpg" else {}))
    return path


def expected_copy(path: Path, size: int = 32) -> np.ndarray:
    """A copy decoded by hand: as it is when size x size, else shorter side to size, centre crop (bilinear)."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if image.size != (size, size):
        image = TF.center_crop(TF.resize(image, size, InterpolationMode.BILINEAR), [size, size])
    return np.asarray(image, dtype=np.uint8)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, Path]:
    """An image folder of 3 classes x 3 images, its gaussian_noise/1 copies and a small_cnn for it."""
    base = tmp_path_factory.mktemp("tree")
    for c, name in enumerate(TREE_CLASSES):
        for f, file in enumerate(TREE_FILES):
            noise_image(base / "clean" / name / file, (48, 40), seed=10 * c + f)
            noise_image(base / "c" / "gaussian_noise" / "1" / name / file, COPY_SIZES[file], seed=100 + 10 * c + f)
    torch.manual_seed(0)
    from compute import models

    model = models.build("small_cnn", len(TREE_CLASSES), (0.5,) * 3, (0.25,) * 3)
    checkpoint.save(base / "m.pt", model, arch="small_cnn", num_classes=len(TREE_CLASSES), mean=(0.5,) * 3,
                    std=(0.25,) * 3, dataset="imagefolder", hparams={"model_id": "m"})
    return {"clean": base / "clean", "c": base / "c", "model": base / "m.pt", "base": base}


@pytest.fixture(scope="module")
def extract_tree(cli) -> Callable:
    """`extract_tree(store, tree, corrupted)`: `compute extract` of the image tree, in this process."""

    def run(store: Path, tree: dict[str, Path], corrupted: Path):
        return cli("extract", "--store", store, "--checkpoints", tree["model"], "--dataset", "imagefolder",
                   "--data-dir", tree["clean"], "--image-size", "32", "--corrupted-dir", corrupted,
                   "--corruptions", "gaussian_noise", "--severities", "1", "--device", "cpu")

    return run


@pytest.fixture(scope="module")
def tree_store(tree, extract_tree) -> Path:
    store = tree["base"] / "store"
    result = extract_tree(store, tree, tree["c"])
    assert result.returncode == 0, result.stderr
    return store


def tree_copy(tree: dict[str, Path], sample_id: int) -> Path:
    return tree["c"] / "gaussian_noise" / "1" / TREE_CLASSES[sample_id // 3] / TREE_FILES[sample_id % 3]


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_tree_settings_record_the_files_bytes_and_show_what_the_model_read(tree, tree_store) -> None:
    entry = provenance.read(tree_store)["gaussian_noise/1"]
    folder = (tree["c"] / "gaussian_noise" / "1").resolve()
    keys = [f"{c}/{f}" for c in TREE_CLASSES for f in TREE_FILES]
    digests = [provenance.file_sha256(folder / key) for key in keys]
    lines = "".join(f"{key} {digest}\n" for key, digest in zip(keys, digests, strict=True))
    assert entry == {"source": "files", "layout": "folders", "path": str(folder), "size": 32,
                     "decode": ["resize_crop", 32, 32], "sha256": hashlib.sha256(lines.encode()).hexdigest()}
    listing = pq.read_table(provenance.listing_path(tree_store, "gaussian_noise/1")).to_pydict()
    assert listing == {"sample_id": list(range(9)), "key": keys, "sha256": digests}
    shown = {i: pixels.image(tree_store, i, "gaussian_noise", 1) for i in range(9)}
    for i, image in shown.items():
        assert image.dtype == np.uint8 and np.array_equal(image, expected_copy(tree_copy(tree, i))), i
    assert_model_saw(tree_store, "gaussian_noise", 1, shown)
    assert not verify.verify(tree_store, views=["images"])  # the listing is a known file of the store


def test_a_changed_or_moved_tree_file_is_a_clear_error(tree, tree_store) -> None:
    path = tree_copy(tree, 4)
    original = path.read_bytes()
    noise_image(path, COPY_SIZES[path.name], seed=999)
    try:
        with pytest.raises(layout.StoreError, match="changed since extraction") as error:
            pixels.image(tree_store, 4, "gaussian_noise", 1)
        assert str(path.resolve()) not in str(error.value) and "gaussian_noise/1" in str(error.value)
        assert pixels.image(tree_store, 3, "gaussian_noise", 1).shape == (32, 32, 3)  # other files still serve
    finally:
        path.write_bytes(original)
    with moved(tree["c"]), pytest.raises(layout.StoreError, match="moved or deleted") as error:
        pixels.image(tree_store, 4, "gaussian_noise", 1)
    assert str(path.resolve()) not in str(error.value) and "sample 4" in str(error.value)


def test_a_tree_with_other_files_is_refused_and_a_moved_one_is_followed(tree, tree_store, extract_tree) -> None:
    other = tree["base"] / "other"
    shutil.copytree(tree["c"], other)
    noise_image(other / "gaussian_noise" / "1" / "bee" / "i2.jpg", (40, 40), seed=7)
    manifest = (tree_store / layout.MANIFEST).read_bytes()
    result = extract_tree(tree_store, tree, other)
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and line.startswith("error: refusing to mix") and "gaussian_noise/1" in line
    assert str(tree["c"].resolve()) in line and str(other.resolve()) in line
    assert (tree_store / layout.MANIFEST).read_bytes() == manifest

    store = tree["base"] / "moved-store"
    shutil.copytree(tree_store, store)
    same = tree["base"] / "same"
    shutil.copytree(tree["c"], same)
    assert extract_tree(store, tree, same).returncode == 0  # the same files elsewhere: the new path is kept
    assert provenance.read(store)["gaussian_noise/1"]["path"] == str((same / "gaussian_noise" / "1").resolve())
    assert np.array_equal(pixels.image(store, 5, "gaussian_noise", 1), expected_copy(tree_copy(tree, 5)))


def test_recording_a_tree_reads_its_files_and_decodes_none(tree, monkeypatch) -> None:
    from compute.datasets import folders
    from compute.image_source import ImageSource

    test = datasets.load("imagefolder", root=str(tree["clean"]), image_size=32).test

    def no_decoding(path):
        raise AssertionError(f"decoded {path}")
    monkeypatch.setattr(folders, "_open_rgb", no_decoding)
    source = ImageSource(test, corrupted_dir=str(tree["c"]), dataset="imagefolder")
    entry, listing = source.provenance("gaussian_noise", 1)
    assert listing.keys == test.keys and entry["sha256"] == listing.sha256
    assert listing.digests[4] == provenance.file_sha256(tree_copy(tree, 4))
