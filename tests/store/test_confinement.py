"""Nothing outside the store is read: symbolic links in a store are refused and named by every reader
(catalog, `index`, `embed`, `verify`), checkpoint paths and provenance files (`--corrupted-dir` files and
trees) resolve only inside the store or a declared root, and DuckDB is confined before it reads the first
file. Open calls are traced with strace where available, and in this process with sys.addaudithook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from store import confine, layout, provenance, reader, writer
from store.catalog import Catalog
from store.verify import attribution_notes, verify

ROOT = Path(__file__).resolve().parents[2]
STRACE = shutil.which("strace")


@pytest.fixture
def stores(synthetic_store, pristine_copy, tmp_path) -> tuple[Path, Path]:
    """(a store to make hostile, another store outside it that the links point into)."""
    pristine = synthetic_store(num_models=2, num_samples=30, corruptions=("fog",), severities=(1,))
    return pristine_copy(pristine, tmp_path / "store"), pristine_copy(pristine, tmp_path / "other")


def _link_prediction(store: Path, other: Path) -> Path:
    victim = reader.partition_file(store, "m01-ft-50", "fog", 1)
    victim.unlink()
    victim.symlink_to(reader.partition_file(other, "m01-ft-50", "fog", 1))
    return victim


def _link_file(store: Path, other: Path, relative: str) -> Path:
    victim = store / relative
    victim.unlink()
    victim.symlink_to(other / relative)
    return victim


def _link_directory(store: Path, other: Path) -> Path:
    victim = store / layout.PREDICTIONS / "model_id=m00-dense-0"
    shutil.rmtree(victim)
    victim.symlink_to(other / layout.PREDICTIONS / "model_id=m00-dense-0", target_is_directory=True)
    return victim


LINKS = {
    "prediction file": _link_prediction,
    "samples.parquet": lambda s, o: _link_file(s, o, layout.SAMPLES),
    "images/clean.npy": lambda s, o: _link_file(s, o, f"{layout.IMAGES}/clean.npy"),
    "manifest.json": lambda s, o: _link_file(s, o, layout.MANIFEST),
    "a partition directory": _link_directory,
}


def cli(*args: str, trace: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "compute", *args]
    if trace is not None:
        command = [STRACE, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(trace), *command]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})


def opened(trace: Path) -> str:
    return trace.read_text()


@pytest.mark.parametrize("case", sorted(LINKS))
def test_every_reader_refuses_a_symlink_and_names_it(stores, case) -> None:
    store, other = stores
    link = LINKS[case](store, other)
    problems = verify(store)
    assert any(p.path == link and "symbolic link" in p.message for p in problems), [str(p) for p in problems]
    with pytest.raises(layout.StoreError, match="symbolic link") as raised:
        Catalog(store)
    message = str(raised.value)  # the store once, the link relative to it
    assert message.count(str(store)) == 1 and f": {link.relative_to(store)} (a symbolic link)" in message


@pytest.mark.parametrize(("command", "case"), [("index", "prediction file"), ("embed", "a partition directory"),
                                               ("verify", "prediction file")])
def test_commands_refuse_links_and_open_nothing_through_them(stores, tmp_path, command, case) -> None:
    store, other = stores
    link = LINKS[case](store, other)
    before = {path: path.read_bytes() for path in sorted(store.rglob("*")) if path.is_file() and not path.is_symlink()}
    trace = tmp_path / "trace.txt" if STRACE else None
    result = cli(command, "--store", str(store), trace=trace)
    assert result.returncode == (1 if command == "verify" else 2), result.stderr
    output = result.stdout + result.stderr
    assert str(link.relative_to(store)) in output and "symbolic link" in output and "Traceback" not in output, output
    if command != "verify":
        assert result.stderr.startswith("error: "), result.stderr
    after = {path: path.read_bytes() for path in sorted(store.rglob("*")) if path.is_file() and not path.is_symlink()}
    assert after == before  # nothing written, nothing lost
    if trace is not None:
        log = opened(trace)
        assert str(other) not in log and str(link) not in log, [line for line in log.splitlines()
                                                                 if str(other) in line or str(link) in line]


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_the_trace_does_see_files_a_reader_opens(stores, tmp_path) -> None:
    """The no-open assertions above can fail: the same trace shows the store's own files being read."""
    store, _ = stores
    trace = tmp_path / "trace.txt"
    assert cli("verify", "--store", str(store), trace=trace).returncode == 0
    assert str(reader.partition_file(store, "m01-ft-50", "fog", 1)) in opened(trace)


# -- checkpoint paths -------------------------------------------------------------------------------------

def test_checkpoints_inside_the_store_are_recorded_relative_and_resolve(stores) -> None:
    store, _ = stores
    ckpt = store / "checkpoints" / "m.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    assert confine.record_path(store, ckpt) == "checkpoints/m.pt"
    assert confine.resolve_allowed(store, "checkpoints/m.pt") == ckpt.resolve()
    assert confine.resolve_allowed(store, str(ckpt.resolve())) == ckpt.resolve()  # older stores: absolute
    row = {"model_id": "m01-ft-50", "arch": "a", "method": "ft", "target_sparsity": 0.5, "sparsity": 0.5, "seed": 0,
           "num_params": 1, "num_nonzero": 1, "checkpoint": str(ckpt), "hparams": "{}", "clean_accuracy": 0.5}
    writer.upsert_models(store, [row])
    recorded = pq.read_table(store / layout.MODELS).to_pylist()
    assert {r["model_id"]: r["checkpoint"] for r in recorded}["m01-ft-50"] == "checkpoints/m.pt"


@pytest.mark.parametrize("recorded", ["/etc/passwd", "../other/checkpoints/m.pt", "/nonexistent/x.pt",
                                      "checkpoints/../../other/checkpoints/m.pt", "OTHER"])
def test_checkpoint_paths_outside_are_refused_without_saying_whether_they_exist(stores, recorded) -> None:
    store, other = stores
    (other / "checkpoints").mkdir()
    (other / "checkpoints" / "m.pt").write_bytes(b"weights")
    recorded = str(other / "checkpoints" / "m.pt") if recorded == "OTHER" else recorded
    with pytest.raises(layout.StoreError) as raised:
        confine.resolve_allowed(store, recorded, roots=[])
    message = str(raised.value)
    assert "outside the store" in message and "no such" not in message.lower() and "not found" not in message
    assert message.replace(recorded, "X") == str(_refusal(store, "/nonexistent/y.pt")).replace("/nonexistent/y.pt", "X")


def _refusal(store: Path, recorded: str) -> layout.StoreError:
    with pytest.raises(layout.StoreError) as raised:
        confine.resolve_allowed(store, recorded, roots=[])
    return raised.value


def test_a_symlinked_checkpoint_inside_the_store_is_refused(stores) -> None:
    store, other = stores
    (other / "m.pt").write_bytes(b"weights")
    (store / "checkpoints").mkdir()
    (store / "checkpoints" / "m.pt").symlink_to(other / "m.pt")
    with pytest.raises(layout.StoreError, match="outside the store"):
        confine.resolve_allowed(store, "checkpoints/m.pt", roots=[])


def test_declared_roots_admit_absolute_checkpoints_under_them(stores, tmp_path, monkeypatch) -> None:
    store, _ = stores
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "m.pt").write_bytes(b"weights")
    with pytest.raises(layout.StoreError):
        confine.resolve_allowed(store, str(runs / "m.pt"), roots=[])
    monkeypatch.setenv(confine.ROOTS_VARIABLE, str(runs))
    assert confine.resolve_allowed(store, str(runs / "m.pt")) == runs / "m.pt"
    assert confine.resolve_allowed(store, "m.pt") == store.resolve() / "m.pt"  # relative: to the store only
    with pytest.raises(layout.StoreError):
        confine.resolve_allowed(store, str(runs / ".." / "store" / ".." / ".." / "etc" / "passwd"))


def test_verify_notes_a_checkpoint_outside_the_allowed_roots_without_naming_it(stores, cli) -> None:
    store, _ = stores
    table = pq.read_table(store / layout.MODELS).to_pylist()
    table[0]["checkpoint"] = "/etc/passwd"
    writer.write_parquet(store, pq.read_table(store / layout.MODELS).from_pylist(table, schema=layout.MODEL_SCHEMA),
                         store / layout.MODELS)
    assert verify(store) == []  # the rows are whole: not damage
    (note,) = attribution_notes(store)
    assert "outside the store and the allowed roots" in note and "/etc/passwd" not in note
    result = cli("verify", "--store", str(store), "--quick")
    assert result.returncode == 0 and "note: model" in result.stdout and "--allow-root" in result.stdout
    allowed = cli("verify", "--store", str(store), "--quick", "--allow-root", "/etc")
    assert allowed.returncode == 0 and "note:" not in allowed.stdout


def test_attribution_loads_checkpoints_only_through_the_resolver(stores) -> None:
    from compute import attribution, loading

    store, _ = stores
    assert "outside the store" in loading.missing_checkpoint(store, "/etc/passwd")
    assert "outside the store" in loading.missing_checkpoint(store, "../other/models.parquet")
    assert "not in this store" in loading.missing_checkpoint(store, "checkpoints/gone.pt")
    with pytest.raises(layout.StoreError):
        attribution.occlusion_maps(str(store), "/etc/passwd", None, 0)
    with pytest.raises(layout.StoreError):
        loading.load_model({"checkpoint": "/etc/passwd", "loader": None}, 32, root=store)


# -- DuckDB ----------------------------------------------------------------------------------------------

def test_duckdb_is_locked_down_before_the_first_view_reads_a_file(stores, monkeypatch) -> None:
    store, _ = stores
    seen = {}
    create_views = Catalog._create_views

    def spy(self) -> None:
        settings = self._connection.execute("SELECT current_setting('enable_external_access'), "
                                            "current_setting('lock_configuration')").fetchone()
        seen["settings"] = settings
        create_views(self)

    monkeypatch.setattr(Catalog, "_create_views", spy)
    catalog = Catalog(store)
    assert seen["settings"] == (False, True)
    with pytest.raises(Exception, match="(?i)permission|disabled"):
        catalog.query("SELECT * FROM read_csv('/etc/passwd')", name="test")
    catalog.close()


def test_refusing_an_outside_checkpoint_touches_nothing_outside(stores, monkeypatch) -> None:
    """Not even a stat: whether the outside path exists cannot leak through timing or errors."""
    from compute import loading

    store, other = stores
    touched: list[str] = []
    for name in ("stat", "lstat", "open"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda path, *a, _real=real, **k: touched.append(os.fspath(path)) or _real(
            path, *a, **k))
    for recorded in (str(other / layout.MODELS), "../other/models.parquet", "/etc/passwd"):
        assert "outside the store" in loading.missing_checkpoint(store, recorded)
    assert touched and all(not path.startswith((str(other), "/etc")) for path in touched), touched


# -- provenance files: only inside the store or under an allowed root ---------------------------------------

_OPENED: list[str] | None = None  # while a test traces, every path this process opens


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and isinstance(args[0], str | bytes | os.PathLike):
        _OPENED.append(os.fsdecode(args[0]))


@pytest.fixture(scope="module")
def traced() -> None:
    sys.addaudithook(_audit)  # for the rest of the process; it records only while _OPENED is a list


def opens(call) -> tuple[object, list[str]]:
    """(what call() returned or raised, every path opened meanwhile: sys.addaudithook's "open" event, raised
    by open(), os.open and io.open, so by numpy, pyarrow's Python side and PIL)."""
    global _OPENED
    _OPENED = []
    try:
        result = call()
    except layout.StoreError as error:
        result = error
    finally:
        seen, _OPENED = _OPENED, None
    return result, seen


def point_outside(store: Path, outside: Path, entry: dict) -> None:
    """Record fog/1 of `store` as read from `entry` (a provenance record naming a file outside the store)."""
    manifest = json.loads((store / layout.MANIFEST).read_text())
    manifest.setdefault("provenance", {})["fog/1"] = entry
    (store / layout.MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def outside_images(stores, tmp_path) -> tuple[Path, Path, np.ndarray]:
    """(the store, an outside directory holding images.npy with one image per sample, those images)."""
    store, _ = stores
    outside = tmp_path / "outside"
    outside.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    np.save(outside / "images.npy", images)
    return store, outside, images


@pytest.mark.parametrize("recorded", ["absolute", "../..", "absolute through ../"])
def test_a_provenance_file_outside_the_allowed_roots_is_refused_and_never_opened(traced, outside_images,
                                                                                  monkeypatch, recorded) -> None:
    from compute import pixels

    store, outside, images = outside_images
    path = {"absolute": str(outside / "images.npy"),
            "../..": os.path.relpath(outside / "images.npy", store),
            "absolute through ../": f"{store}/../outside/images.npy"}[recorded]
    point_outside(store, outside, {**provenance.from_files(outside / "images.npy", (0, 30), images), "path": path})
    monkeypatch.delenv(confine.ROOTS_VARIABLE, raising=False)
    refused, seen = opens(lambda: pixels.image(store, 3, "fog", 1))
    assert isinstance(refused, layout.StoreError), refused
    assert "corrupted file" in str(refused) and "--allow-root" in str(refused) and str(outside) not in str(refused)
    assert seen and not [p for p in seen if p.startswith(str(outside))], seen  # the trace sees the manifest
    monkeypatch.setenv(confine.ROOTS_VARIABLE, str(outside))  # the operator allows the directory
    shown, seen = opens(lambda: pixels.image(store, 3, "fog", 1))
    if recorded == "../..":  # a relative entry is relative to the store, whatever roots are allowed
        assert isinstance(shown, layout.StoreError)
    else:
        assert np.array_equal(shown, images[3]) and any(p.startswith(str(outside)) for p in seen)


def test_a_folder_tree_entry_outside_the_allowed_roots_shows_no_byte_of_it(traced, outside_images,
                                                                            monkeypatch) -> None:
    """The issue's case: a tree entry made the Sample page show the sha256 prefix of an outside file."""
    from compute import pixels

    store, outside, _ = outside_images
    secret = outside / "secret.png"
    secret.write_bytes(b"not for visitors")
    keys = [secret.name] + ["../../etc/passwd"] * 29
    listing = provenance.Listing(tuple(keys), tuple("0" * 64 for _ in keys))
    provenance.write_listing(store, "fog/1", listing)
    point_outside(store, outside, {"source": "files", "layout": "folders", "path": str(outside), "size": 32,
                                   "decode": None, "sha256": listing.sha256})
    monkeypatch.delenv(confine.ROOTS_VARIABLE, raising=False)
    for sample_id in (0, 1):
        refused, seen = opens(lambda sample_id=sample_id: pixels.image(store, sample_id, "fog", 1))
        assert isinstance(refused, layout.StoreError) and "allowed roots" in str(refused), refused
        assert not [p for p in seen if p.startswith((str(outside), "/etc"))], seen
    monkeypatch.setenv(confine.ROOTS_VARIABLE, str(outside))  # allowed: a key with ../ still cannot leave it
    refused, seen = opens(lambda: pixels.image(store, 1, "fog", 1))
    assert isinstance(refused, layout.StoreError) and not [p for p in seen if p.startswith("/etc")]
    changed, _ = opens(lambda: pixels.image(store, 0, "fog", 1))
    assert "changed since extraction" in str(changed)  # read, as allowed, and checked against its sha256


def test_the_sample_page_names_the_setting_not_the_outside_path(traced, outside_images, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from dashboard.pages import PAGES
    from testkit.app import APP

    store, outside, images = outside_images
    point_outside(store, outside, provenance.from_files(outside / "images.npy", (0, 30), images))
    monkeypatch.delenv(confine.ROOTS_VARIABLE, raising=False)
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.session_state["corruption"], app.session_state["severity"] = "fog", 1
    _, seen = opens(lambda: app.switch_page(PAGES["sample"].script).run())
    assert not app.exception, app.exception
    assert not app.get("image") and not [p for p in seen if p.startswith(str(outside))]
    shown = "\n".join(e.value for e in (*app.warning, *app.error, *app.info, *app.markdown))
    assert "allowed roots" in shown and str(outside) not in shown and str(store) not in shown


@pytest.mark.parametrize("loader", ["[" * 100_000 + "]" * 100_000, "[1, 2]", "{not json", '{"kind": 1e999}'])
def test_a_hostile_loader_record_is_refused_not_raised(stores, loader) -> None:
    from compute import loading

    store, _ = stores
    assert "loader record" in loading.missing_checkpoint(store, "checkpoints/m.pt", loader)
    with pytest.raises(layout.StoreError, match="loader record"):
        loading.load_model({"checkpoint": "checkpoints/m.pt", "loader": loader}, 32, root=store)
