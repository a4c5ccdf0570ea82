"""Named queries of the models, the samples, one sample's predictions and per-setting geometry: the
dashboard and the CLI call these and get Polars frames. Queries on other topics live in their own
analysis module (matrices, agreement, embeddings, ...); every statement, wherever written, runs through
store.catalog.Catalog."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis import stored
from store import derived_record, layout
from store.catalog import Catalog
from store.vocabulary import model_order, setting_order


def models(catalog: Catalog) -> pl.DataFrame:
    """One row per model (its card), dense first, then by method and sparsity."""
    return catalog.query(f"""
        SELECT model_id, arch, method, target_sparsity, sparsity, seed, base, reference_model_id, num_params,
               num_nonzero, clean_accuracy, loader, checkpoint, hparams, operation, file_bytes,
               latency_ms_batch1, latency_ms_batch256, latency_threads, latency_load_average
        FROM models
        ORDER BY {model_order("seed", "model_id")}
    """, name="models")  # noqa: S608 (constant SQL)


def sample_rows(catalog: Catalog, sample_id: int, severity: int | None = None) -> pl.DataFrame:
    """Every prediction of one sample across models, corruptions and severities (with `severity`: clean
    and that severity only, which reads a fraction of a large store), with the class names of its label
    and of each prediction."""
    severities = "true" if severity is None else "(p.severity = 0 OR p.severity = $3)"
    params = [list(catalog.manifest["class_names"]), int(sample_id)] + ([] if severity is None else [int(severity)])
    return catalog.query(f"""
        SELECT p.model_id, m.method, m.target_sparsity, p.corruption, p.severity, p.label,
               $1[p.label + 1] AS label_name, p.pred, $1[p.pred + 1] AS pred_name,
               p.correct, p.confidence, p.p_true, p.angle_true, p.feature_norm, p.margin, p.loss
        FROM {catalog.by_sample} p JOIN models m USING (model_id)
        WHERE p.sample_id = $2 AND {severities}
        ORDER BY {model_order("p.model_id", table="m")}, {setting_order("p")}
    """, params, name="sample_rows")  # noqa: S608 (constant SQL)


def samples(catalog: Catalog) -> pl.DataFrame:
    """One row per test sample: its id, class and split."""
    return catalog.query("SELECT sample_id, label, label_name, split FROM samples ORDER BY sample_id", name="samples")


# -- one model in one setting: the local and global geometry views ---------------------------------------

_ONE_SETTING = "model_id = ? AND corruption = ? AND severity = ? AND finite AND list_contains(?, label)"


def _setting_params(catalog: Catalog, model_id: str, corruption: str, severity: int,
                    labels: Sequence[int] | None) -> list:
    """The bound values of _ONE_SETTING; no labels means every class."""
    chosen = range(catalog.num_classes) if labels is None else labels
    return [model_id, corruption, int(severity), [int(label) for label in chosen]]


def setting_points(catalog: Catalog, model_id: str, corruption: str, severity: int,
                   labels: Sequence[int] | None = None) -> pl.DataFrame:
    """One model's per-sample geometry in one setting (rows with finite geometry, classes `labels`)."""
    return catalog.query(f"""
        SELECT p.sample_id, p.label, s.label_name, p.pred, p.correct, p.angle_true, p.feature_norm, p.margin
        FROM (SELECT * FROM predictions WHERE {_ONE_SETTING}) p JOIN samples s USING (sample_id)
        ORDER BY p.sample_id
    """, _setting_params(catalog, model_id, corruption, severity, labels), name="setting_points")  # noqa: S608 (constant SQL)


# Two models' rows for the same samples in one setting, side by side, with their differences.
_PAIR_SQL = f"""
        SELECT a.sample_id, a.label, a.correct AS correct_a, b.correct AS correct_b,
               a.angle_true AS angle_true_a, b.angle_true AS angle_true_b,
               a.feature_norm AS feature_norm_a, b.feature_norm AS feature_norm_b,
               a.margin AS margin_a, b.margin AS margin_b,
               b.angle_true - a.angle_true AS delta_angle_true,
               b.feature_norm - a.feature_norm AS delta_feature_norm,
               b.margin - a.margin AS delta_margin,
               CASE WHEN a.correct AND b.correct THEN 'right in both' WHEN a.correct THEN 'only A right'
                    WHEN b.correct THEN 'only B right' ELSE 'wrong in both' END AS change
        FROM (SELECT * FROM predictions WHERE {_ONE_SETTING}) a
        JOIN (SELECT * FROM predictions WHERE {_ONE_SETTING}) b USING (sample_id)
"""  # noqa: S608 (constant SQL)


def pair_deltas(catalog: Catalog, model_a: str, model_b: str, corruption: str, severity: int,
                labels: Sequence[int] | None = None) -> pl.DataFrame:
    """Per sample, model B minus model A (angle_true, feature_norm, margin) in one setting, with both
    models' values and `change`: right in both, only A right, only B right, wrong in both."""
    params = (_setting_params(catalog, model_a, corruption, severity, labels)
              + _setting_params(catalog, model_b, corruption, severity, labels))
    return catalog.query(f"""
        SELECT d.sample_id, d.label, s.label_name, d.* EXCLUDE (sample_id, label)
        FROM ({_PAIR_SQL}) d JOIN samples s USING (sample_id)
        ORDER BY d.sample_id
    """, params, name="pair_deltas")  # noqa: S608 (constant SQL)


def _binned(source: str, params: list, bins: int, keys: Sequence[str] = ()) -> tuple[str, list]:
    """A 2-D histogram per class of `source` (columns label, correct, x, y): cells of a bins x bins grid
    over the data's extent (shared by every class, so small multiples compare), with the samples in
    each cell and their accuracy. Empty cells are left out. With `keys` (columns of `source`), one grid
    and histogram per value of the keys, those columns first: what `compute index` stores at once."""
    by = "".join(f"{key}, " for key in keys)
    sql = f"""
        WITH source AS ({source}),
        grid AS (SELECT {by}?::INTEGER AS n, min(x) AS x0, greatest(max(x) - min(x), 1e-9) AS dx,
                        min(y) AS y0, greatest(max(y) - min(y), 1e-9) AS dy FROM source
                 {f"GROUP BY {by}n" if keys else ""}),
        cell AS (
            SELECT {by}label, correct, n, x0, dx, y0, dy,
                   least(floor((x - x0) / dx * n), n - 1)::INTEGER AS bin_x,
                   least(floor((y - y0) / dy * n), n - 1)::INTEGER AS bin_y
            FROM source {f"JOIN grid USING ({', '.join(keys)})" if keys else ", grid"}
        )
        SELECT {by}c.label, s.label_name, x0 + bin_x * dx / n AS x_low, x0 + (bin_x + 1) * dx / n AS x_high,
               y0 + bin_y * dy / n AS y_low, y0 + (bin_y + 1) * dy / n AS y_high,
               count(*) AS samples, avg(correct::DOUBLE) AS accuracy
        FROM cell c JOIN (SELECT DISTINCT label, label_name FROM samples) s USING (label)
        GROUP BY {by}c.label, s.label_name, bin_x, bin_y, n, x0, dx, y0, dy
        ORDER BY {by}c.label, x_low, y_low
    """  # noqa: S608 (constant SQL around constant SQL)
    return sql, [*params, int(bins)]


# The grid the Local geometry page asks for (dashboard.charts.common.BINS): `compute index` stores every
# model's bins in every setting at this size, over every class (the grid spans the chosen classes' data,
# so a class filter is computed).
STORED_BINS = 24
STORED_VERSION = 1  # raise when the stored bins are computed another way than below
_ONE_CORRUPTION = "corruption = ? AND finite AND list_contains(?, label)"  # every model and severity
_SETTING_SOURCE = ("SELECT label, correct, angle_true AS x, feature_norm AS y FROM predictions "  # noqa: S608
                   f"WHERE {_ONE_SETTING}")
_EVERY_MODEL_SOURCE = ("SELECT corruption, severity, model_id, label, correct, angle_true AS x, feature_norm AS y "  # noqa: S608
                       f"FROM predictions WHERE {_ONE_CORRUPTION}")
_PAIR_SOURCE = (f"SELECT label, correct_b AS correct, delta_angle_true AS x, delta_feature_norm AS y "  # noqa: S608
                f"FROM ({_PAIR_SQL})")
# Every model (B) of one corruption beside its reference (A) in the same setting, as _PAIR_SOURCE's columns:
# the stored delta bins.
_REFERENCE_PAIRS_SOURCE = f"""
        SELECT b.corruption, b.severity, m.reference_model_id AS model_a, b.model_id AS model_b, a.label,
               b.correct AS correct, b.angle_true - a.angle_true AS x, b.feature_norm - a.feature_norm AS y
        FROM (SELECT * FROM predictions WHERE {_ONE_CORRUPTION}) b JOIN models m USING (model_id)
        JOIN (SELECT * FROM predictions WHERE {_ONE_CORRUPTION}) a
          ON a.model_id = m.reference_model_id AND a.severity = b.severity AND a.sample_id = b.sample_id
"""  # noqa: S608 (constant SQL)
_SETTING_KEYS = ("corruption", "severity")


_REFERENCES = ("model_id", "reference_model_id")  # what the stored delta bins depend on of the model cards


def _every_class(catalog: Catalog, labels: Sequence[int] | None) -> bool:
    return labels is None or sorted({int(label) for label in labels}) == list(range(catalog.num_classes))


def _stored_bins(catalog: Catalog, file: str, keys: dict[str, str], corruption: str, severity: int) -> pl.DataFrame:
    """One histogram of stored bins `file`: the rows of `keys` ({column: value}) in one setting."""
    where = "".join(f"{column} = ? AND " for column in keys)
    return catalog.query(f"""
        SELECT * EXCLUDE ({", ".join(keys)}, corruption, severity) FROM {stored.rows(catalog, file)}
        WHERE {where}corruption = ? AND severity = ? ORDER BY label, x_low, y_low
    """, [*keys.values(), corruption, int(severity)], name=f"{file.removesuffix('.parquet')}.stored")  # noqa: S608


def stored_definition(catalog: Catalog, record: str) -> str:
    """The digest of what computes stored bins `record` (layout.SETTING_BINS_RECORD, or
    REFERENCE_DELTA_BINS_RECORD with this catalog's model references)."""
    if record == layout.SETTING_BINS_RECORD:
        return derived_record.digest(record, STORED_VERSION, STORED_BINS, _binned(_EVERY_MODEL_SOURCE, [], 0, (*_SETTING_KEYS, "model_id"))[0])
    references = stored.models_key(catalog, _REFERENCES)
    return derived_record.digest(record, STORED_VERSION, STORED_BINS,
                                 _binned(_REFERENCE_PAIRS_SOURCE, [], 0, (*_SETTING_KEYS, "model_a", "model_b"))[0],
                                 references)


def setting_bins(catalog: Catalog, model_id: str, corruption: str, severity: int, bins: int = 40,
                 labels: Sequence[int] | None = None) -> pl.DataFrame:
    """angle_true (x) against feature_norm (y) of one model in one setting as a per-class 2-D histogram:
    label, label_name, x_low, x_high, y_low, y_high, samples, accuracy. For settings too large to plot
    sample by sample. Every class at STORED_BINS: read from index/setting_bins.parquet while `compute
    index` stored it fresh, else computed_setting_bins."""
    if (bins == STORED_BINS and _every_class(catalog, labels)
            and catalog.is_fresh(layout.SETTING_BINS_RECORD, stored_definition(catalog, layout.SETTING_BINS_RECORD))):
        return _stored_bins(catalog, layout.SETTING_BINS, {"model_id": model_id}, corruption, severity)
    return computed_setting_bins(catalog, model_id, corruption, severity, bins, labels)


def computed_setting_bins(catalog: Catalog, model_id: str, corruption: str, severity: int, bins: int = 40,
                          labels: Sequence[int] | None = None) -> pl.DataFrame:
    """setting_bins computed from the predictions."""
    return catalog.query(*_binned(_SETTING_SOURCE, _setting_params(catalog, model_id, corruption, severity, labels),
                                  bins), name="setting_bins")


def every_setting_bins(catalog: Catalog, corruption: str) -> pl.DataFrame:
    """setting_bins of every model in every setting of one corruption at STORED_BINS over every class,
    corruption, severity and model_id first (what index/setting_bins.parquet stores)."""
    every = list(range(catalog.num_classes))
    return catalog.query(*_binned(_EVERY_MODEL_SOURCE, [corruption, every], STORED_BINS, (*_SETTING_KEYS, "model_id")),
                         name="every_setting_bins")


def pair_delta_bins(catalog: Catalog, model_a: str, model_b: str, corruption: str, severity: int,
                    bins: int = 40, labels: Sequence[int] | None = None) -> pl.DataFrame:
    """pair_deltas as a per-class 2-D histogram of delta_angle_true (x) against delta_feature_norm (y);
    `accuracy` is model B's. Columns as setting_bins. Model B against its reference (A), every class at
    STORED_BINS: read from index/reference_delta_bins.parquet while fresh, else computed_pair_delta_bins."""
    record = layout.REFERENCE_DELTA_BINS_RECORD
    if (bins == STORED_BINS and _every_class(catalog, labels)
            and dict(stored.model_rows(catalog, _REFERENCES)).get(model_b) == model_a
            and catalog.is_fresh(record, stored_definition(catalog, record))):
        return _stored_bins(catalog, layout.REFERENCE_DELTA_BINS, {"model_a": model_a, "model_b": model_b},
                            corruption, severity)
    return computed_pair_delta_bins(catalog, model_a, model_b, corruption, severity, bins, labels)


def computed_pair_delta_bins(catalog: Catalog, model_a: str, model_b: str, corruption: str, severity: int,
                             bins: int = 40, labels: Sequence[int] | None = None) -> pl.DataFrame:
    """pair_delta_bins computed from the predictions."""
    params = (_setting_params(catalog, model_a, corruption, severity, labels)
              + _setting_params(catalog, model_b, corruption, severity, labels))
    return catalog.query(*_binned(_PAIR_SOURCE, params, bins), name="pair_delta_bins")


def reference_delta_bins(catalog: Catalog, corruption: str) -> pl.DataFrame:
    """pair_delta_bins of every model (model_b) against its reference (model_a) in every setting of one
    corruption at STORED_BINS over every class, corruption, severity, model_a and model_b first (what
    index/reference_delta_bins.parquet stores)."""
    every = list(range(catalog.num_classes))
    return catalog.query(*_binned(_REFERENCE_PAIRS_SOURCE, [corruption, every] * 2, STORED_BINS,
                                  (*_SETTING_KEYS, "model_a", "model_b")), name="reference_delta_bins")


def class_values(catalog: Catalog, model_id: str, corruption: str, severity: int,
                 sample_ids: Sequence[int] | None = None, every_class: bool = False) -> pl.DataFrame:
    """Per-class values of one model's rows in one setting (all samples, or `sample_ids`): sample_id,
    label, classes (class indices), logits and angles (degrees) of the same classes, as the store keeps
    them: every class up to the store's threshold, else the top-k by logit and the true class. With
    `every_class`, angles has one entry per class (see Catalog.class_angles_sql) and classes is every class.
    The one way to per-class values: pages never read the lists themselves."""
    chosen = "true" if sample_ids is None else "list_contains(?, sample_id)"
    params = [model_id, corruption, int(severity)] + ([] if sample_ids is None else [[int(i) for i in sample_ids]])
    classes = "classes" if not every_class else f"range({catalog.num_classes})::SMALLINT[]"
    logits = "logits" if not every_class or catalog.keeps_all_classes else "NULL::FLOAT[]"
    return catalog.query(f"""
        SELECT sample_id, label, {classes} AS classes, {logits} AS logits,
               {catalog.class_angles_sql(every_class)} AS angles
        FROM class_values
        WHERE model_id = ? AND corruption = ? AND severity = ? AND {chosen}
        ORDER BY sample_id
    """, params, name="class_values")  # noqa: S608 (constant SQL)


def _axes_sql(top_k: int | None) -> tuple[str, str, str, list]:
    """The parallel-coordinates axes of one prediction row as list expressions, with their bound values:
    (nearest, values, axis classes). `nearest` may be named by the other two (a lateral alias).

    Every class's angle, then feature_norm, margin, loss (only for a store that keeps every class); or,
    with top_k, angle_true, the k smallest angles to wrong classes among the classes the store keeps
    (closest first), then the same three. Axis classes: the class of each angle axis (NULL for the three
    others), so a line can name the classes it is closest to."""
    tail, no_class = "[feature_norm, margin, loss]", "[NULL, NULL, NULL]::INTEGER[]"
    if top_k is None:
        return "NULL", f"list_concat(angles, {tail})", f"list_concat(classes::INTEGER[], {no_class})", []
    # angles and classes are aligned; a top-k store keeps fewer classes than the study has
    nearest = ("list_sort(list_filter(list_transform(angles, lambda a, i: {'a': a, 'c': classes[i]::INTEGER}), "
               "lambda p: p.c <> label))[1:?]")
    return (nearest, f"list_concat([angle_true], list_transform(nearest, lambda p: p.a), {tail})",
            f"list_concat([label::INTEGER], list_transform(nearest, lambda p: p.c), {no_class})", [int(top_k)])


def parallel_axes(catalog: Catalog, top_k: int | None = None) -> list[str]:
    """The axis names parallel_lines and parallel_density use, in order, with their units."""
    tail = ["feature_norm", "margin", "loss (nats)"]
    if top_k is None:
        return [f"angle to {name} (°)" for name in catalog.manifest["class_names"]] + tail
    return ["angle_true (°)"] + [f"wrong class #{k} angle (°)" for k in range(1, top_k + 1)] + tail


def _long_axes_sql(top_k: int | None, limit_lines: bool) -> str:
    """CTEs ending in `axis` (sample_id, label, correct, axis_index, value, scaled) of one setting; the
    scaled value is in [0, 1], the angles sharing one degree scale and every other axis its own range.
    Bound values: the axes' (_axes_sql), the setting's, the line limit (when limited), the last angle
    axis's index."""
    nearest, values, classes, _ = _axes_sql(top_k)
    angles = "axis_index <= ?"
    chosen = "ORDER BY hash(sample_id) LIMIT ?" if limit_lines else ""
    return f"""
        chosen_rows AS (SELECT sample_id, label, correct, {nearest} AS nearest, {values} AS vals,
                               {classes} AS axis_classes
                        FROM class_values WHERE {_ONE_SETTING}),
        picked AS (SELECT * FROM chosen_rows {chosen}),
        long AS (
            SELECT sample_id, label, correct, unnest(range(len(vals))) AS axis_index, unnest(vals)::DOUBLE AS value,
                   unnest(axis_classes) AS axis_class
            FROM picked
        ),
        grouped AS (SELECT *, CASE WHEN {angles} THEN -1 ELSE axis_index END AS scale_group FROM long),
        extent AS (SELECT scale_group, min(value) AS low, greatest(max(value) - min(value), 1e-9) AS width
                   FROM grouped GROUP BY scale_group),
        axis AS (SELECT sample_id, label, correct, axis_index, axis_class, value, (value - low) / width AS scaled,
                        low, low + width AS high
                 FROM grouped JOIN extent USING (scale_group))
    """  # noqa: S608 (constant SQL)


def _parallel_params(catalog: Catalog, model_id: str, corruption: str, severity: int, top_k: int | None,
                     labels: Sequence[int] | None) -> tuple[list, int]:
    """Bound values of _long_axes_sql before its LIMIT, and the index of the last angle axis."""
    *_, top_params = _axes_sql(top_k)
    last_angle = (catalog.num_classes if top_k is None else top_k + 1) - 1
    return [*top_params, *_setting_params(catalog, model_id, corruption, severity, labels)], last_angle


def parallel_lines(catalog: Catalog, model_id: str, corruption: str, severity: int, *, top_k: int | None = None,
                   lines: int = 300, labels: Sequence[int] | None = None) -> pl.DataFrame:
    """Parallel coordinates of one model in one setting, one polyline per sample for at most `lines`
    samples (a fixed pseudo-random subset): sample_id, label, label_name, correct, axis_index, axis
    (parallel_axes), axis_class_name (the class of an angle axis for this sample: with top_k, its true class
    then its nearest wrong classes; null on the other axes), value (in the axis's unit), scaled (0..1 along
    the axis) and the axis's low and high ends."""
    params, last_angle = _parallel_params(catalog, model_id, corruption, severity, top_k, labels)
    ctes = _long_axes_sql(top_k, limit_lines=True)
    frame = catalog.query(f"""
        WITH {ctes}
        SELECT a.sample_id, a.label, s.label_name, a.correct, a.axis_index, a.axis_class, a.value, a.scaled,
               a.low, a.high
        FROM axis a JOIN samples s USING (sample_id)
        ORDER BY a.sample_id, a.axis_index
    """, [*params, int(lines), last_angle], name="parallel_lines")  # noqa: S608 (constant SQL)
    names = dict(enumerate(catalog.manifest["class_names"]))
    frame = frame.with_columns(pl.col("axis_class").cast(pl.Int64).replace_strict(
        names, default=None, return_dtype=pl.String).alias("axis_class_name")).drop("axis_class")
    return _named_axes(frame, parallel_axes(catalog, top_k))


def parallel_density(catalog: Catalog, model_id: str, corruption: str, severity: int, *,
                     top_k: int | None = None, bins: int = 24, labels: Sequence[int] | None = None) -> pl.DataFrame:
    """Density parallel coordinates of every sample of one model in one setting: per pair of adjacent
    axes and correctness, how many polylines run from each of `bins` levels on the left axis to each on
    the right one. Columns: axis_index (left axis), axis, correct, scaled, scaled_next (bin centres,
    0..1), samples, low and high (the axis's ends)."""
    params, last_angle = _parallel_params(catalog, model_id, corruption, severity, top_k, labels)
    ctes = _long_axes_sql(top_k, limit_lines=False)
    frame = catalog.query(f"""
        WITH {ctes},
        binned AS (SELECT sample_id, correct, axis_index, low, high,
                          (least(floor(scaled * ?), ? - 1) + 0.5) / ? AS level FROM axis)
        SELECT a.axis_index, a.correct, a.level AS scaled, b.level AS scaled_next, count(*) AS samples,
               a.low, a.high
        FROM binned a JOIN binned b ON b.sample_id = a.sample_id AND b.axis_index = a.axis_index + 1
        GROUP BY ALL
        ORDER BY a.axis_index, a.correct, scaled, scaled_next
    """, [*params, last_angle, int(bins), int(bins), int(bins)], name="parallel_density")  # noqa: S608 (constant SQL)
    return _named_axes(frame, parallel_axes(catalog, top_k))


def _named_axes(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """Add the axis name beside axis_index."""
    return frame.with_columns(pl.col("axis_index").cast(pl.Int64)).join(
        pl.DataFrame({"axis_index": range(len(names)), "axis": list(names)}), on="axis_index", how="left")
