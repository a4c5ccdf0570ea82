"""Nothing outside the store is read: symbolic links in a store are refused and named by every reader
(catalog, `index`, `embed`, `verify`), checkpoint paths resolve only inside the store or a declared root,
and DuckDB is confined before it reads the first file. Open calls are traced with strace where available."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from store import confine, layout, reader, writer
from store.catalog import Catalog
from store.verify import attribution_notes, verify

ROOT = Path(__file__).resolve().parent.parent
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
    assert str(link) in str(raised.value)


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
    assert str(link) in output and "symbolic link" in output and "Traceback" not in output, output
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
    from dashboard import attribution

    store, _ = stores
    assert "outside the store" in attribution.missing_checkpoint(store, "/etc/passwd")
    assert "outside the store" in attribution.missing_checkpoint(store, "../other/models.parquet")
    assert "not in this store" in attribution.missing_checkpoint(store, "checkpoints/gone.pt")
    with pytest.raises(layout.StoreError):
        attribution.occlusion_maps.__wrapped__(str(store), "/etc/passwd", None, 0)


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
        catalog.query("SELECT * FROM read_csv('/etc/passwd')")
    catalog.close()


def test_refusing_an_outside_checkpoint_touches_nothing_outside(stores, monkeypatch) -> None:
    """Not even a stat: whether the outside path exists cannot leak through timing or errors."""
    from dashboard import attribution

    store, other = stores
    touched: list[str] = []
    for name in ("stat", "lstat", "open"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda path, *a, _real=real, **k: touched.append(os.fspath(path)) or _real(
            path, *a, **k))
    for recorded in (str(other / layout.MODELS), "../other/models.parquet", "/etc/passwd"):
        assert "outside the store" in attribution.missing_checkpoint(store, recorded)
    assert touched and all(not path.startswith((str(other), "/etc")) for path in touched), touched
