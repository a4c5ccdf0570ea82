"""One click or one hostile file cannot take the server down: attribution works in chunks within a memory
budget and reports progress, a visitor runs one at a time and the server a few; FIFOs in a store are named,
never opened; metadata reads are bounded (declared row counts, JSON depth and number size)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from compute import attribution
from dashboard import attribution as panel
from dashboard.pages import PAGES
from store import layout, reader
from store.catalog import Catalog
from store.layout import StoreError
from store.verify import verify
from testkit.app import APP

ROOT = Path(__file__).resolve().parents[2]
RETURNS_WITHIN_S = 10  # the bound for every command and page on a hostile store


@pytest.fixture(scope="module")
def pristine(synthetic_store) -> Path:
    """The session's store of this size: read here; `hostile` copies it to damage."""
    return synthetic_store(num_models=2, num_samples=12, corruptions=("fog",), severities=(1,))


@pytest.fixture
def hostile(pristine, pristine_copy) -> Path:
    return pristine_copy(pristine)


def within(seconds: float, call: Callable[[], object]) -> object:
    """call() in a daemon thread; fails the test when it has not returned after `seconds` (a hang)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return result[0] if result else None


# -- attribution ------------------------------------------------------------------------------------------

def test_patch_and_stride_scale_with_the_image_to_about_the_same_grid() -> None:
    assert attribution.patch_and_stride(32) == (8, 4)  # what the 32-px demo always used
    for size in (28, 32, 64, 224, 512):
        patch, stride = attribution.patch_and_stride(size)
        assert abs(len(range(0, size - patch + 1, stride)) - attribution.GRID) <= 1, size
    assert attribution.chunk_size((224, 224, 3), budget=1) == 1
    assert attribution.chunk_size((32, 32, 3), budget=1 << 30) > attribution.chunk_size((224, 224, 3), budget=1 << 30)


def test_an_image_whose_one_copy_exceeds_the_budget_is_refused_before_any_model_loads(attributed) -> None:
    from testkit.app import ATTRIBUTED

    huge = np.zeros((2048, 2048, 3), np.uint8)
    with pytest.raises(StoreError, match="needs more memory for one occluded copy"):
        attribution.occlusion_maps(str(attributed), f"checkpoints/{ATTRIBUTED}.pt", huge, 0)


MEASURE = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from compute import attribution

    class Tiny(torch.nn.Module):  # the model contract (DESIGN.md): forward_features and a linear classifier
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.classifier = torch.nn.Linear(4, 10)
        def forward_features(self, x):
            return self.conv(x).mean(dim=(2, 3))

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Tiny().eval()
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    attribution.occlusion(model, image[:32, :32], 3)  # warm up: torch's allocator and kernels
    budget = int(sys.argv[1])

    def peak():  # this process's own high-water RSS (VmHWM): ru_maxrss would carry the parent's over exec
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def grown(budget, progress=None):
        before = peak()
        maps = attribution.occlusion(model, image, 3, patch=16, stride=16, budget=budget, progress=progress)
        return peak() - before, maps

    calls = []
    chunked, maps = grown(budget, lambda done, total: calls.append((done, total)))
    unchunked, _ = grown(1 << 40)  # the measurement sees memory: all copies at once grow the peak
    default = attribution.occlusion(model, image, 3)
    print(json.dumps({"chunked": chunked, "unchunked": unchunked, "calls": calls,
                      "finite": bool(np.isfinite(maps["margin"]).all()),
                      "default_shape": list(default["margin"].shape)}))
""")


@pytest.mark.slow  # a fresh process importing torch: about 7 s
def test_attribution_of_a_224px_image_stays_under_its_memory_budget_and_reports_progress() -> None:
    """197 occluded 224-px copies (a 16-px patch, stride 16) are 119 MB of float32 input at once; within an
    80 MB budget (two copies as compute.attribution estimates them) the process doing it grows by less than
    the budget, while the same copies in one batch grow it by more (so the measurement can fail). Growth is
    the process's own high-water RSS (VmHWM): ru_maxrss is kept across exec, so a large test runner would
    hide the growth of the process it starts."""
    budget = 80 << 20  # about two copies (compute.attribution._copy_bytes: 38.5 MB each at 224 px)
    done = subprocess.run([sys.executable, "-c", MEASURE, str(budget)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout.splitlines()[-1])
    copies = 1 + (224 // 16) ** 2
    assert measured["chunked"] < budget < measured["unchunked"], measured
    calls = measured["calls"]
    assert len(calls) > 1 and calls[-1] == [copies, copies]
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})  # rises chunk by chunk
    assert measured["finite"] and measured["default_shape"] == [224, 224]


def test_a_visitor_runs_one_attribution_and_the_server_a_few() -> None:
    with panel.one_attribution("visitor-a"):
        with pytest.raises(panel.Busy, match="another tab"), panel.one_attribution("visitor-a"):
            pass
        with panel.one_attribution("visitor-b"), pytest.raises(panel.Busy, match="other visitors"), \
                panel.one_attribution("visitor-c"):  # another visitor gets the second slot, a third waits
            pass
    with panel.one_attribution("visitor-c"):  # slots come back
        pass
    assert attribution.MAX_RUNNING == 2 and not panel._visitors


# -- FIFOs, devices, sockets ------------------------------------------------------------------------------

FIFO_PLACES = {
    "completion marker": f"{layout.COMPLETE}/m00-dense-0__fog__1.json",
    "partition file": "predictions/model_id=m00-dense-0/corruption=fog/severity=1/part-0.parquet",
    "samples.parquet": layout.SAMPLES,
    "manifest.json": layout.MANIFEST,
    "a stray entry": "predictions/pipe",
}


def fifo(store: Path, relative: str) -> Path:
    path = store / relative
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("place", FIFO_PLACES)
def test_a_fifo_anywhere_in_a_store_is_named_and_no_command_hangs(hostile, cli, place) -> None:
    path = fifo(hostile, FIFO_PLACES[place])
    problems = within(RETURNS_WITHIN_S, lambda: verify(hostile))
    assert any(p.path == path and "FIFO" in p.message for p in problems), [str(p) for p in problems]
    for command in (("verify", "--store", hostile, "--quick"), ("report", "--store", hostile),
                    ("index", "--store", hostile)):
        ran = within(RETURNS_WITHIN_S, lambda command=command: cli(*command))
        assert ran.returncode != 0 and "FIFO" in ran.stdout + ran.stderr, (command, ran)
        assert "Traceback" not in ran.stderr


@pytest.mark.parametrize("place", ["completion marker", "manifest.json"])
def test_a_page_on_a_store_with_a_fifo_returns_and_names_it(monkeypatch, hostile, place) -> None:
    fifo(hostile, FIFO_PLACES[place])
    monkeypatch.setenv("PRUNESCOPE_STORE", str(hostile))
    app = AppTest.from_file(APP, default_timeout=RETURNS_WITHIN_S).run()  # AppTest raises past the timeout
    app.switch_page(PAGES["overview"].script).run()
    assert not app.exception, app.exception
    assert any("FIFO" in e.value or "not a prunescope store" in e.value for e in (*app.error, *app.warning))


def test_the_first_page_of_a_root_answers_when_one_of_its_stores_holds_a_fifo(monkeypatch, hostile, tmp_path,
                                                                             pristine_copy, pristine) -> None:
    served = tmp_path / "served"
    pristine_copy(hostile, served / "a-hostile")
    pristine_copy(pristine, served / "b-fine")
    fifo(served / "a-hostile", FIFO_PLACES["partition file"])
    monkeypatch.setenv("PRUNESCOPE_STORES", str(served))
    app = AppTest.from_file(APP, default_timeout=RETURNS_WITHIN_S).run()
    assert not app.exception, app.exception


def test_regular_refuses_every_special_file(tmp_path) -> None:
    from store.confine import regular

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(StoreError, match="FIFO"):
        regular(tmp_path / "pipe")
    with pytest.raises(StoreError, match="a device"):
        regular("/dev/null")
    with pytest.raises(StoreError, match="a directory"):
        regular(tmp_path)
    (tmp_path / "file").write_text("{}")
    assert regular(tmp_path / "file") == tmp_path / "file"


# -- bounded metadata ---------------------------------------------------------------------------------------

def row_bomb(store: Path, rows: int = 2_000_000) -> None:
    """samples.parquet declaring `rows` rows in a few kilobytes (every value the same compresses to
    nothing), with a manifest that agrees: the issue's 0.8 MB file declaring 60 million rows, scaled down
    to stay cheap (the bound is rows per byte, so the scale does not matter)."""
    zeros = np.zeros(rows, np.int32)
    table = pa.table({"sample_id": pa.array(zeros), "label": pa.array(zeros.astype(np.int16)),
                      "label_name": pa.DictionaryArray.from_arrays(zeros, ["class0"]).cast(pa.string()),
                      "split": pa.DictionaryArray.from_arrays(zeros, ["test"]).cast(pa.string())},
                     schema=layout.SAMPLE_SCHEMA)
    pq.write_table(table, store / layout.SAMPLES, compression="zstd")
    manifest = json.loads((store / layout.MANIFEST).read_text())
    (store / layout.MANIFEST).write_text(json.dumps({**manifest, "num_samples": rows}))
    assert rows > reader.MAX_ROWS_PER_BYTE * (store / layout.SAMPLES).stat().st_size


def test_a_row_count_bomb_is_reported_not_read(hostile, cli, monkeypatch) -> None:
    row_bomb(hostile)
    problems = verify(hostile)
    assert any(p.path == hostile / layout.SAMPLES and "more than its bytes can hold" in p.message
               for p in problems), [str(p) for p in problems]
    with pytest.raises(StoreError, match="more than its bytes can hold"):
        Catalog(hostile)  # refused before DuckDB reads a row
    ran = cli("report", "--store", hostile)
    assert ran.returncode != 0 and "more than its bytes can hold" in ran.stderr and "Traceback" not in ran.stderr
    monkeypatch.setenv("PRUNESCOPE_STORE", str(hostile))
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception and any("more than its bytes can hold" in e.value for e in app.error)


HOSTILE_JSON = {  # what json.loads cannot take (RecursionError, ValueError) or takes but should not (NaN)
    "100,000-deep arrays": ("nested more than", lambda m: '{"dataset": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "a 5,000-digit integer": ("a number of 5000 characters", lambda m: json.dumps(m)[:-1] + ', "x": ' + "9" * 5000 + "}"),
    "NaN": ("NaN is not a number", lambda m: json.dumps({**m, "x": float("nan")})),
    "Infinity": ("Infinity is not a number", lambda m: json.dumps({**m, "x": float("inf")})),
    "1e999": ("out of range", lambda m: json.dumps(m)[:-1] + ', "x": 1e999}'),
}


@pytest.mark.parametrize("case", HOSTILE_JSON)
def test_a_deep_or_huge_number_manifest_is_reported_never_raised(hostile, cli, monkeypatch, case) -> None:
    phrase, content = HOSTILE_JSON[case]
    manifest = json.loads((hostile / layout.MANIFEST).read_text())
    (hostile / layout.MANIFEST).write_text(content(manifest))
    (problem,) = [p for p in verify(hostile) if p.path == hostile / layout.MANIFEST]
    assert phrase in problem.message
    for command in (("verify", "--store", hostile), ("report", "--store", hostile),
                    ("report", "--store", hostile, "--format", "latex")):
        ran = cli(*command)
        assert ran.returncode != 0 and phrase in ran.stdout + ran.stderr and "Traceback" not in ran.stderr, ran
    monkeypatch.setenv("PRUNESCOPE_STORE", str(hostile))
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception and any(phrase in e.value for e in app.error)


def test_a_marker_with_hostile_json_is_named_and_the_partition_is_not_complete(hostile) -> None:
    marker = reader.marker_path(hostile, "m00-dense-0", "fog", 1)
    marker.write_text('{"rows": ' + "1" * 5000 + "}")
    assert not reader.is_complete(hostile, "m00-dense-0", "fog", 1)
    assert any(p.path == marker and "5000 characters" in p.message for p in verify(hostile))


@pytest.fixture(scope="module")
def attributed(tmp_path_factory, pristine) -> Path:
    """A small store whose model ATTRIBUTED has a real checkpoint inside the store."""
    from testkit.app import ATTRIBUTED, attach_checkpoint

    root = Path(shutil.copytree(pristine, tmp_path_factory.mktemp("attributed") / "study", symlinks=True))
    attach_checkpoint(root, ATTRIBUTED)
    return root


def test_the_sample_page_shows_progress_and_cancel_and_keeps_one_run_per_visitor(monkeypatch, attributed) -> None:
    from dashboard import guard
    from testkit.app import ATTRIBUTED, open_app

    monkeypatch.setattr(panel, "_results", type(panel._results)())  # nothing computed yet
    monkeypatch.setattr(guard, "visitor", lambda: "visitor-a")
    with panel.one_attribution("visitor-a"):  # this visitor's other tab is computing
        app = open_app(monkeypatch, attributed, PAGES["sample"].script, model=ATTRIBUTED)
        app.toggle(key="attribution").set_value(True).run()
        assert any("another tab" in w.value for w in app.warning) and not app.get("progress")
    charts_before = len(app.get("vega_lite_chart"))
    app.run()
    (bar,) = app.get("progress")
    copies = 1 + attribution.GRID ** 2
    assert bar.proto.value == 100 and bar.proto.text == f"{copies} of {copies} occluded copies"
    assert len(app.get("vega_lite_chart")) == charts_before + 1  # the maps
    app.button(key="attribution_cancel").click().run()  # stops a run at its next chunk; turns the maps off
    assert app.toggle(key="attribution").value is False and not app.get("progress")
    app.toggle(key="attribution").set_value(True).run()  # asked again: from the cache, at once
    assert not app.get("progress") and len(app.get("vega_lite_chart")) == charts_before + 1
