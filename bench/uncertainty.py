"""Numbers with their uncertainty on the query benchmark's store (bench.queries: 20 models x 96 settings x
10,000 samples = 19.2M prediction rows): the evaluation matrix with Wilson intervals, Newcombe paired
intervals, exact McNemar p-values and a Holm correction, against the point-estimate matrix; the same per
replicate group (t interval and t test over seeds); and the report command.

Goals (warm, 2 threads): matrix with intervals and significance <= 1 s; report <= 5 s. The store's models
all have seed 0, so for the group figure the 19 pruned models are relabelled into groups of 2-3 seeds (one
group per method) in Polars before group_statistics: the same number of cells, the test over seeds runs.
PRUNESCOPE_BENCH_SAMPLES=N builds a smaller store (N samples per setting, its own directory) instead,
for a quick look on a busy machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from analysis import matrices, report, uncertainty
from bench import queries
from store import derived, layout
from store.catalog import Catalog
from testkit.synthetic import write_store


def bench_store() -> tuple[Path, int]:
    """(store, samples per setting): the query benchmark's store, or a smaller one when asked."""
    samples = int(os.environ.get("PRUNESCOPE_BENCH_SAMPLES", queries.NUM_SAMPLES))
    if samples == queries.NUM_SAMPLES:
        return queries.ensure_store(), samples
    root = queries.OUT / f"uncertainty-store-{samples}"
    if not (root / layout.MODELS).exists():
        write_store(root, num_models=queries.NUM_MODELS, num_samples=samples, corruptions=queries.CORRUPTIONS)
        derived.build_sample_index(root)
    return root, samples


def as_replicates(cells: pl.DataFrame) -> pl.DataFrame:
    """Model cells with every pruned model of one method made a seed of one group (for timing only)."""
    seeds = cells.select("model_id", "method").unique().with_columns(
        pl.col("model_id").rank("dense").over("method").cast(pl.Int64).alias("new_seed"))
    return (cells.join(seeds, on=["model_id", "method"])
            .with_columns(pl.col("method").alias("group_id"), pl.col("new_seed").alias("seed"),
                          pl.lit(0.5).alias("target_sparsity")).drop("new_seed"))


def main() -> None:
    root, samples = bench_store()
    catalog = Catalog(root, threads=queries.THREADS)
    rows = queries.NUM_MODELS * (1 + 5 * len(queries.CORRUPTIONS)) * samples
    print(f"store: {rows:,} prediction rows; {queries.THREADS} threads; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'':<46}{'cold s':>8}{'warm s':>8}{'cpu s':>8}   (median of {queries.REPEATS} warm runs)")
    point = queries.timed(lambda: matrices.accuracy_matrix(catalog))
    queries.report("point-estimate accuracy matrix", point, None)

    def with_intervals() -> pl.DataFrame:
        return uncertainty.with_significance(uncertainty.matrix_cells(catalog, "model"), "holm")

    matrix = queries.timed(with_intervals)
    queries.report("matrix + intervals + McNemar + Holm (model)", matrix, 1.0,
                   f"; {matrix[1] / point[1]:.0f}x the point estimate")
    cells = uncertainty.model_cells(catalog)
    grouped = queries.timed(lambda: uncertainty.with_significance(
        uncertainty.group_statistics(as_replicates(cells)), "holm"), 2)
    queries.report("  + groups: t interval and t test over seeds", grouped, None)
    table = queries.timed(lambda: report.report_table(catalog, "group"))
    queries.report("report table (in process)", table, 5.0)
    command = [sys.executable, "-m", "compute", "report", "--store", str(root)]
    wall = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall.append(time.perf_counter() - start)
    print(f"{'python -m compute report (whole command)':<46}{wall[0]:8.3f}{min(wall):8.3f}{'':>8}   "
          f"goal <= 5 s: {'met' if min(wall) <= 5 else 'MISSED'} (includes Python and torch start-up)")
    catalog.close()


if __name__ == "__main__":
    main()
