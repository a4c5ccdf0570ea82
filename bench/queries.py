"""Query speed on a study of realistic size: 20 models x (clean + 19 corruptions x 5 severities) x 10,000
samples = 19.2M prediction rows in 1,920 partitions, built once with bench.synthetic.write_store and kept in
bench/out/ (git-ignored; delete it to rebuild, which takes ~5 min on 2 cores).

Everything runs on 2 threads (DuckDB and Arrow). Goals: accuracy matrix <= 0.5 s and >= 10x faster than
pandas on the same files; a fragile-sample preset <= 1 s; one sample across every model and setting
<= 0.2 s. Each figure is the median of REPEATS warm runs (the first, cold run is printed beside it), with
the process CPU time, since wall time on a shared machine also measures the neighbours (load printed).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from bench.synthetic import write_store
from store import analytics, queries, sample_index, schema, writer
from store.catalog import Catalog

OUT = Path(__file__).resolve().parent / "out"
STORE = OUT / "queries-store"
NUM_MODELS = 20
NUM_SAMPLES = 10_000
# The 19 CIFAR-10-C corruptions in the canonical order of reference/cifar10c.md.
CORRUPTIONS = (*analytics.COMMON_CORRUPTIONS, *analytics.EXTRA_CORRUPTIONS)
THREADS = 2
REPEATS = 5


def ensure_store() -> Path:
    """The benchmark store, generated on first use into a temporary name and renamed when complete."""
    if (STORE / schema.MODELS).exists():
        if writer.summarize_markers(STORE):  # a cached store from before markers carried sums
            print("added partition sums to the cached store's markers", flush=True)
        if not sample_index.is_fresh(STORE):
            start = time.perf_counter()
            sample_index.build(STORE)
            print(f"built the by-sample index in {time.perf_counter() - start:.0f} s", flush=True)
        return STORE
    partial = OUT / "queries-store.partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"generating {NUM_MODELS} models x {1 + 5 * len(CORRUPTIONS)} settings x {NUM_SAMPLES} samples "
          f"in {STORE} (once) ...", flush=True)
    start = time.perf_counter()
    write_store(partial, num_models=NUM_MODELS, num_samples=NUM_SAMPLES, corruptions=CORRUPTIONS)
    sample_index.build(partial)
    os.replace(partial, STORE)
    print(f"generated in {time.perf_counter() - start:.0f} s", flush=True)
    return STORE


def timed(run: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float, float, object]:
    """(cold wall s, median warm wall s, median warm CPU s, last result) of `run`."""
    def once() -> tuple[float, float, object]:
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        return time.perf_counter() - wall, time.process_time() - cpu, result

    cold, _, result = once()
    warm = [once() for _ in range(repeats)]
    return (cold, statistics.median(w for w, _, _ in warm), statistics.median(c for _, c, _ in warm),
            warm[-1][2])


def pandas_accuracy(root: Path) -> object:
    """The baseline: every prediction file through pyarrow into pandas (only the columns needed, with the
    hive partition keys), then a pandas group-by."""
    dataset = ds.dataset(root / schema.PREDICTIONS, format="parquet", partitioning="hive")
    frame = dataset.to_table(columns=["model_id", "corruption", "severity", "correct"]).to_pandas()
    return frame.groupby(["model_id", "corruption", "severity"], observed=True)["correct"].mean()


def store_bytes(root: Path) -> tuple[int, int]:
    """(bytes of the whole store, bytes of its prediction files) on disk."""
    files = [path for path in root.rglob("*") if path.is_file()]
    predictions = root / schema.PREDICTIONS
    return (sum(path.stat().st_size for path in files),
            sum(path.stat().st_size for path in files if predictions in path.parents))


def report(name: str, figures: tuple[float, float, float, object], goal: float | None, note: str = "") -> None:
    cold, warm, cpu, _ = figures
    verdict = "" if goal is None else f"goal <= {goal:g} s: {'met' if warm <= goal else 'MISSED'}"
    print(f"{name:<42}{cold:8.3f}{warm:8.3f}{cpu:8.3f}   {verdict}{note}", flush=True)


def main() -> None:
    root = ensure_store()
    pa.set_cpu_count(THREADS)
    pa.set_io_thread_count(THREADS)
    catalog = Catalog(root, threads=THREADS)
    rows = NUM_MODELS * (1 + 5 * len(CORRUPTIONS)) * NUM_SAMPLES
    total, predictions = store_bytes(root)
    print(f"store: {rows:,} prediction rows, {total:,} bytes on disk ({predictions:,} in predictions/, "
          f"{predictions / rows:.1f} bytes/row); {THREADS} threads; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'':<42}{'cold s':>8}{'warm s':>8}{'cpu s':>8}   (median of {REPEATS} warm runs)")

    matrix = timed(lambda: analytics.accuracy_matrix(catalog))
    baseline = timed(lambda: pandas_accuracy(root), repeats=2)
    assert matrix[3].height == baseline[3].shape[0] == rows // NUM_SAMPLES
    report("accuracy matrix (analytics, per model)", matrix, 0.5,
           f"; pandas {baseline[1]:.3f} s: {baseline[1] / matrix[1]:.1f}x faster (goal >= 10x)")
    report("  pandas baseline (pyarrow -> pandas)", baseline, None)
    report("  accuracy matrix (queries, per model)", timed(lambda: queries.accuracy_matrix(catalog)), None)
    report("  accuracy matrix per method", timed(lambda: analytics.accuracy_matrix(catalog, "method")), None)

    report("pruning_fragile (k=3, clean)", timed(lambda: analytics.pruning_fragile(catalog, 3)), 1.0)
    report("pruning_fragile (k=3, fog 5)", timed(lambda: analytics.pruning_fragile(catalog, 3, "fog", 5)), 1.0)
    report("corruption_fragile (dense, fog <= 5)",
           timed(lambda: analytics.corruption_fragile(catalog, "fog", 5)), 1.0)
    report("robust (every model, severity <= 5)", timed(lambda: analytics.robust(catalog, 5)), 1.0)

    report("sample_rows (1 sample, 1,920 settings)", timed(lambda: queries.sample_rows(catalog, 4321)), 0.2)
    report("  sample_rows, clean + severity 3 only", timed(lambda: queries.sample_rows(catalog, 4321, 3)), None)

    print("other analytics (no goal):")
    report("  model_summary (CE, mCE)", timed(lambda: analytics.model_summary(catalog), 2), None)
    report("  metric_matrix angle_true", timed(lambda: analytics.metric_matrix(catalog, "angle_true"), 2), None)
    report("  model_agreement, one setting", timed(lambda: analytics.model_agreement(catalog, "fog", 3), 2), None)
    report("  model_agreement, all settings", timed(lambda: analytics.model_agreement(catalog), 1), None)
    report("  corruption_redundancy, severity 3", timed(lambda: analytics.corruption_redundancy(catalog, 3), 1),
           None)
    report("  model_vectors (clean)", timed(lambda: analytics.model_vectors(catalog), 1), None)
    scoped = "model_id = 'm03-ltr-50' and corruption = 'fog' and severity = 3 and angle_true > 60"
    report("  filter_rows, one model and setting", timed(lambda: analytics.filter_rows(catalog, scoped), 2), None)
    report("  filter_rows, whole study", timed(
        lambda: analytics.filter_rows(catalog, "dense_correct and not correct and margin < -2.9", timeout=60), 1),
        None)
    catalog.close()


if __name__ == "__main__":
    main()
