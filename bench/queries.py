"""Query speed on a study of realistic size: 20 models x (clean + 19 corruptions x 5 severities) x 10,000
samples = 19.2M prediction rows in 1,920 partitions, built once with testkit.synthetic.write_store and kept in
bench/out/ (git-ignored; delete it to rebuild, which takes ~5 min on 2 cores per format). The same data is
written twice, in store format 2 (the current one) and format 1, and every query runs on both side by side:
format 2 derives columns that format 1 stored, and must not be slower by more than 10%.
BENCH_QUERIES_MODELS=N builds N models instead of 20 (stores of other sizes live in their own folders).

Everything runs on 2 threads (DuckDB and Arrow). Goals: accuracy matrix <= 0.5 s and >= 10x faster than
pandas on the same files; a fragile-sample preset <= 1 s; one sample across every model and setting
<= 0.2 s. Each figure is the median of REPEATS warm runs (the first, cold run is printed beside it), with
the process CPU time, since wall time on a shared machine also measures the neighbours (load printed).

`python -m bench queries --store DIR` times the queries behind every page on any store instead (e.g. the
100M-row one of `python -m bench store`), each beside its goal (issue 21: presets, the paged sample table
and every page's queries <= 1 s, a free filter over the whole study <= 2 s or stopped by its timeout with
a message saying so, one sample <= 0.2 s).
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
import pyarrow.parquet as pq

from analysis import agreement, embeddings, matrices, predictors, presets, queries, uncertainty
from store import derived, layout, reader, sample_index, vocabulary
from store.catalog import Catalog, QueryTimeout
from testkit.synthetic import write_store

OUT = Path(__file__).resolve().parent / "out"
NUM_MODELS = int(os.environ.get("BENCH_QUERIES_MODELS", 20))
STORE = OUT / ("queries-store" if NUM_MODELS == 20 else f"queries-store-{NUM_MODELS}")
NUM_SAMPLES = 10_000
# The 19 CIFAR-10-C corruptions in the canonical order of reference/cifar10c.md.
CORRUPTIONS = vocabulary.CORRUPTION_NAMES
THREADS = 2
REPEATS = 5


def ensure_store(version: int = layout.SCHEMA_VERSION) -> Path:
    """The benchmark store of one format, generated on first use into a temporary name and renamed when
    complete. A cached store of another format version is rebuilt."""
    store = STORE if version == layout.SCHEMA_VERSION else STORE.with_name(f"{STORE.name}-v{version}")
    if (store / layout.MODELS).exists():
        try:
            cached = reader.read_manifest(store)["schema_version"]
        except layout.StoreError:
            cached = None
        if cached == version:
            if derived.summarize_markers(store):  # a cached store from before markers carried sums
                print("added partition sums to the cached store's markers", flush=True)
            if not sample_index.is_fresh(store):
                start = time.perf_counter()
                derived.build_sample_index(store)
                print(f"built the by-sample index in {time.perf_counter() - start:.0f} s", flush=True)
            return store
        shutil.rmtree(store)
    partial = store.with_name(store.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"generating {NUM_MODELS} models x {1 + 5 * len(CORRUPTIONS)} settings x {NUM_SAMPLES} samples "
          f"in {store}, format {version} (once) ...", flush=True)
    start = time.perf_counter()
    write_store(partial, num_models=NUM_MODELS, num_samples=NUM_SAMPLES, corruptions=CORRUPTIONS, version=version)
    derived.build_sample_index(partial)
    os.replace(partial, store)
    print(f"generated in {time.perf_counter() - start:.0f} s", flush=True)
    return store


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


def report(name: str, figures: tuple[float, float, float, object], goal: float | None, note: str = "") -> None:
    """One line of `timed` figures: cold and warm wall time, warm CPU time, and the goal's verdict."""
    cold, warm, cpu, _ = figures
    verdict = "" if goal is None else f"goal <= {goal:g} s: {'met' if warm <= goal else 'MISSED'}"
    print(f"{name:<42}{cold:8.3f}{warm:8.3f}{cpu:8.3f}   {verdict}{note}", flush=True)


def pandas_accuracy(root: Path) -> object:
    """The baseline: every prediction file through pyarrow into pandas (only the columns needed, with the
    hive partition keys), correct = pred == the sample's label (format 2 keeps labels in samples.parquet),
    then a pandas group-by."""
    labels = pq.read_table(root / layout.SAMPLES, columns=["label"]).column("label").to_numpy()
    dataset = ds.dataset(root / layout.PREDICTIONS, format="parquet", partitioning="hive")
    frame = dataset.to_table(columns=["model_id", "corruption", "severity", "sample_id", "pred"]).to_pandas()
    frame["correct"] = frame["pred"].to_numpy() == labels[frame["sample_id"].to_numpy()]
    return frame.groupby(["model_id", "corruption", "severity"], observed=True)["correct"].mean()


def store_bytes(root: Path) -> tuple[int, int]:
    """(bytes of the whole store, bytes of its prediction files) on disk."""
    files = [path for path in root.rglob("*") if path.is_file()]
    predictions = root / layout.PREDICTIONS
    return (sum(path.stat().st_size for path in files),
            sum(path.stat().st_size for path in files if predictions in path.parents))


def side_by_side(name: str, run: Callable[[Catalog], object], catalogs: dict[int, Catalog], goal: float | None,
                 repeats: int = REPEATS) -> None:
    """One query on the format-2 and the format-1 store, their runs interleaved so both meet the same load:
    cold and median warm wall time of format 2 (the goal is on it), median warm CPU time of both, and
    format 2's CPU ratio (CPU, not wall: on a shared machine wall time also measures the neighbours)."""
    cold = {}
    for version in (2, 1):
        start = time.perf_counter()
        run(catalogs[version])
        cold[version] = time.perf_counter() - start
    wall: dict[int, list[float]] = {2: [], 1: []}
    cpu: dict[int, list[float]] = {2: [], 1: []}
    for _ in range(repeats):
        for version in (2, 1):
            start, start_cpu = time.perf_counter(), time.process_time()
            run(catalogs[version])
            wall[version].append(time.perf_counter() - start)
            cpu[version].append(time.process_time() - start_cpu)
    warm, new_cpu, old_cpu = statistics.median(wall[2]), statistics.median(cpu[2]), statistics.median(cpu[1])
    ratio = new_cpu / max(old_cpu, 1e-9)
    verdict = "" if goal is None else f"  goal <= {goal:g} s: {'met' if warm <= goal else 'MISSED'}"
    flag = "ok" if ratio <= 1.10 else "SLOWER"
    print(f"{name:<42}{cold[2]:8.3f}{warm:8.3f}{new_cpu:8.3f}{old_cpu:9.3f}{ratio:7.2f} {flag}{verdict}", flush=True)


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def store_queries(catalog: Catalog) -> list[tuple[str, Callable[[], object], float | None]]:
    """(name, query, goal in s) for the queries the pages run on `catalog`'s study, with the selections a
    user starts from: the first pruned model, fog at severity 3, the first sample."""
    models = queries.models(catalog)
    pruned = models.filter(models["method"] != "dense")["model_id"][0]
    reference = models.filter(models["model_id"] == pruned)["reference_model_id"][0]
    whole = "reference_correct and not correct and margin < -2.9"
    scoped = f"model_id = '{pruned}' and corruption = 'fog' and severity = 3 and angle_true > 60"
    return [
        ("overview: accuracy matrix", lambda: matrices.accuracy_matrix(catalog), 0.5),
        ("overview: pie_counts (clean)", lambda: presets.pie_counts(catalog), 1.0),
        ("matrix: cells with intervals (groups)", lambda: uncertainty.matrix_cells(catalog), 1.0),
        ("matrix: cells with intervals (models)", lambda: uncertainty.matrix_cells(catalog, "model"), 1.0),
        ("matrix: model_summary (CE, mCE)", lambda: matrices.model_summary(catalog), 1.0),
        ("similarity: model_agreement (fog 3)", lambda: agreement.model_agreement(catalog, "fog", 3), 1.0),
        ("similarity: model_agreement (all)", lambda: agreement.model_agreement(catalog), 1.0),
        ("similarity: corruption_redundancy (3)", lambda: agreement.corruption_redundancy(catalog, 3), 1.0),
        ("predictors: model_geometry (clean)", lambda: predictors.model_geometry(catalog), 1.0),
        ("local: setting_bins", lambda: queries.setting_bins(catalog, pruned, "fog", 3), 1.0),
        ("local: pair_delta_bins", lambda: queries.pair_delta_bins(catalog, pruned, reference, "fog", 3), 1.0),
        ("global: parallel_lines", lambda: queries.parallel_lines(catalog, pruned, "fog", 3), 1.0),
        ("embedding: sample_embedding", lambda: embeddings.sample_embedding(catalog, pruned), 1.0),
        ("samples: pruning_fragile (k=3, fog 3)", lambda: presets.pruning_fragile(catalog, 3, "fog", 3), 1.0),
        ("samples: corruption_fragile (fog <= 5)", lambda: presets.corruption_fragile(catalog, "fog", 5), 1.0),
        ("samples: robust (severity <= 3)", lambda: presets.robust(catalog, 3), 1.0),
        ("samples: flipped_by_pruning (fog 3)",
         lambda: presets.flipped_by_pruning(catalog, reference, pruned, "fog", 3), 1.0),
        ("samples: PIE (fog 3)", lambda: presets.pruning_identified_exemplars(catalog, "fog", 3), 1.0),
        ("samples: paged table, scoped filter", lambda: (presets.count_rows(catalog, scoped),
                                                         presets.filter_rows(catalog, scoped)), 1.0),
        ("samples: free filter, whole study", lambda: (presets.count_rows(catalog, whole),
                                                       presets.filter_rows(catalog, whole)), 2.0),
        ("sample: sample_rows (every setting)", lambda: queries.sample_rows(catalog, 4321 % catalog.manifest[
            "num_samples"]), 0.2),
    ]


def run_store(root: Path, repeats: int) -> None:
    """Every page's queries on the store at `root`, cold and warm, each beside its goal."""
    pa.set_cpu_count(THREADS)
    pa.set_io_thread_count(THREADS)
    start = time.perf_counter()
    catalog = Catalog(root, threads=THREADS)
    opened = time.perf_counter() - start
    rows = int(catalog.query("SELECT sum(rows)::BIGINT AS n FROM partition_summary", name="run_store")["n"][0] or 0)
    total, predictions = store_bytes(root)
    print(f"{root}: {rows:,} prediction rows in {len(catalog.partition_files):,} files, {total / 1e9:.2f} GB on "
          f"disk; catalog opened in {opened:.2f} s; {THREADS} threads; {load()} on {os.cpu_count()} cores "
          "(a shared machine)")
    print(catalog.aggregates_hint or "pre-aggregates: fresh (store.aggregates)")
    print(f"{'query':<42}{'cold s':>8}{'warm s':>8}{'cpu s':>8}   (median of {repeats} warm runs)")
    for name, run, goal in store_queries(catalog):
        try:
            report(name, timed(run, repeats), goal)
        except QueryTimeout as error:  # the page shows this message: the filter was cut off, no answer given
            print(f"{name:<42}  stopped by its timeout: {error}  goal: MISSED", flush=True)
    print(load())
    catalog.close()


def main(argv: list[str] | None = None) -> None:
    if argv:
        import argparse

        parser = argparse.ArgumentParser(prog="python -m bench queries", description=__doc__.splitlines()[0])
        parser.add_argument("--store", type=Path, required=True, help="time every page's queries on this store")
        parser.add_argument("--repeats", type=int, default=3, help="warm runs per query (median printed)")
        options = parser.parse_args(argv)
        run_store(options.store, options.repeats)
        return
    roots = {2: ensure_store(2), 1: ensure_store(1)}
    pa.set_cpu_count(THREADS)
    pa.set_io_thread_count(THREADS)
    catalogs = {version: Catalog(root, threads=THREADS) for version, root in roots.items()}
    rows = NUM_MODELS * (1 + 5 * len(CORRUPTIONS)) * NUM_SAMPLES
    for version, root in roots.items():
        total, predictions = store_bytes(root)
        print(f"format {version} store: {rows:,} prediction rows, {total:,} bytes on disk ({predictions:,} in "
              f"predictions/, {predictions / rows:.1f} bytes/row)")
    print(f"{THREADS} threads; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'format 2 (format 1 beside it)':<42}{'cold s':>8}{'warm s':>8}{'cpu s':>8}{'v1 cpu':>9}{'v2/v1':>7}"
          f"   (median of {REPEATS} warm runs, interleaved)")

    matrix = timed(lambda: matrices.accuracy_matrix(catalogs[2]))
    baseline = timed(lambda: pandas_accuracy(roots[2]), repeats=2)
    assert matrix[3].height == baseline[3].shape[0] == rows // NUM_SAMPLES
    print(f"accuracy matrix vs pandas on format 2: {matrix[1]:.3f} s vs {baseline[1]:.3f} s, "
          f"{baseline[1] / matrix[1]:.1f}x faster (goal >= 10x)")
    side_by_side("accuracy matrix (per model)", matrices.accuracy_matrix, catalogs, 0.5)
    side_by_side("  accuracy matrix per method", lambda c: matrices.accuracy_matrix(c, "method"), catalogs, None)

    side_by_side("pruning_fragile (k=3, clean)", lambda c: presets.pruning_fragile(c, 3), catalogs, 1.0)
    side_by_side("pruning_fragile (k=3, fog 5)", lambda c: presets.pruning_fragile(c, 3, "fog", 5), catalogs, 1.0)
    side_by_side("corruption_fragile (reference, fog <= 5)", lambda c: presets.corruption_fragile(c, "fog", 5),
                 catalogs, 1.0)
    side_by_side("robust (every model, severity <= 5)", lambda c: presets.robust(c, 5), catalogs, 1.0)

    side_by_side("sample_rows (1 sample, every setting)", lambda c: queries.sample_rows(c, 4321), catalogs, 0.2)
    side_by_side("  sample_rows, clean + severity 3 only", lambda c: queries.sample_rows(c, 4321, 3), catalogs, None)

    print("other analytics (no goal):")
    side_by_side("  model_summary (CE, mCE)", matrices.model_summary, catalogs, None, 2)
    side_by_side("  metric_matrix angle_true", lambda c: matrices.metric_matrix(c, "angle_true"), catalogs, None, 2)
    side_by_side("  model_agreement, one setting", lambda c: agreement.model_agreement(c, "fog", 3), catalogs, None, 2)
    side_by_side("  model_agreement, all settings", agreement.model_agreement, catalogs, None, 1)
    side_by_side("  corruption_redundancy, severity 3", lambda c: agreement.corruption_redundancy(c, 3), catalogs,
                 None, 1)
    side_by_side("  model_vectors (clean)", embeddings.model_vectors, catalogs, None, 1)
    side_by_side("  parallel_lines, one setting", lambda c: queries.parallel_lines(c, "m03-ltr-50", "fog", 3),
                 catalogs, None, 2)
    scoped = "model_id = 'm03-ltr-50' and corruption = 'fog' and severity = 3 and angle_true > 60"
    side_by_side("  filter_rows, one model and setting", lambda c: presets.filter_rows(c, scoped), catalogs, None, 2)
    side_by_side("  filter_rows, whole study", lambda c: presets.filter_rows(
        c, "reference_correct and not correct and margin < -2.9", timeout=120), catalogs, None, 1)
    for catalog in catalogs.values():
        catalog.close()


if __name__ == "__main__":
    main()
