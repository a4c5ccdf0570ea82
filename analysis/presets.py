"""Which samples to look at: the preset sample filters of the Samples page (fragile to pruning, fragile
to corruption, robust everywhere, flipped by pruning, pruning-identified exemplars) and the free filter,
a user's expression in the analysis.filters grammar run over the `rows` view."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from analysis import stored
from analysis.sql import equal_to, reference_model, require_models
from store import derived_record, layout
from store.catalog import Catalog, QueryError, QueryTimeout
from store.vocabulary import SETTING_ORDER


def _with_labels(catalog: Catalog, hits: str, params: Sequence[object], order: str) -> pl.DataFrame:
    """Run `hits` (a query with a sample_id column) and put sample_id, label, label_name in front."""
    return catalog.query(f"""
        WITH hits AS ({hits})
        SELECT s.sample_id, s.label, s.label_name, hits.* EXCLUDE (sample_id)
        FROM hits JOIN samples s USING (sample_id)
        ORDER BY {order}
    """, params, name="with_labels")  # noqa: S608 (constant SQL)


# Each model's row carries its reference's id before the join on (reference, sample): joined on the
# sample alone first, 105 models made 105 x 105 pairs per sample (15 s on the 100M-row study).
_PRUNING_FRAGILE = """
    WITH setting AS (
        SELECT model_id, sample_id, correct, angle_true FROM predictions WHERE corruption = ? AND severity = ?
    ),
    pruned AS (
        SELECT s.sample_id, s.correct, s.angle_true, m.reference_model_id
        FROM setting s JOIN models m USING (model_id) WHERE m.reference_model_id IS NOT NULL
    ),
    reference AS (
        SELECT model_id AS reference_model_id, sample_id, angle_true FROM setting
        WHERE correct AND model_id IN (SELECT reference_model_id FROM models)
    )
    SELECT p.sample_id, count(*) FILTER (WHERE NOT p.correct) AS pruned_wrong, count(*) AS pruned_models,
           avg(d.angle_true) AS reference_angle_true, avg(p.angle_true) AS pruned_angle_true
    FROM pruned p JOIN reference d USING (reference_model_id, sample_id)
    GROUP BY p.sample_id
    HAVING count(*) FILTER (WHERE NOT p.correct) >= ?
"""
_FRAGILE_ORDER = "pruned_wrong DESC, sample_id"


def pruning_fragile(catalog: Catalog, k: int = 1, corruption: str = layout.CLEAN, severity: int = 0) -> pl.DataFrame:
    """Samples the reference gets right and at least `k` pruned models get wrong, in one setting.

    In the spirit of Hooker et al. 2019's pruning identified exemplars: what pruning costs, sample by
    sample. Each model is judged against its reference (`models.reference_model_id`: its base, or the
    chosen reference), so a model counts only on samples its reference classifies correctly; models
    without a reference do not count. Columns: pruned_wrong (pruned
    models wrong), pruned_models (pruned models whose reference is right), reference_angle_true and
    pruned_angle_true (mean over those pruned models): the angle pruning added. Most-wrong first.
    Read from index/pruning_fragile.parquet (every sample with pruned_wrong, for any k) while `compute
    index` stored it fresh for these model cards and references, else computed_pruning_fragile.
    """
    if catalog.is_fresh(layout.PRUNING_FRAGILE_RECORD, stored_definition(catalog, layout.PRUNING_FRAGILE_RECORD)):
        hits = (f"SELECT * EXCLUDE (corruption, severity) FROM {stored.rows(catalog, layout.PRUNING_FRAGILE)} "  # noqa: S608
                "WHERE corruption = ? AND severity = ? AND pruned_wrong >= ?")
        return _with_labels(catalog, hits, [corruption, int(severity), int(k)], _FRAGILE_ORDER)
    return computed_pruning_fragile(catalog, k, corruption, severity)


def computed_pruning_fragile(catalog: Catalog, k: int = 1, corruption: str = layout.CLEAN,
                             severity: int = 0) -> pl.DataFrame:
    """pruning_fragile computed from the predictions (what index/pruning_fragile.parquet stores with k=0)."""
    return _with_labels(catalog, _PRUNING_FRAGILE, [corruption, int(severity), int(k)], _FRAGILE_ORDER)


def corruption_fragile(catalog: Catalog, corruption: str, max_severity: int = 5,
                       model_id: str | None = None) -> pl.DataFrame:
    """Samples one model gets right on clean images and wrong under `corruption` at some severity <= s.

    The model is the study's reference by default (reference_model: what the corruption does before any
    pruning;
    pass a pruned model's id to ask the same of it). Columns: first_wrong_severity (the mildest severity
    that breaks it), wrong_severities (how many of the severities up to s are wrong), clean_margin and
    worst_margin (smallest margin under the corruption). Mildest breakage first.
    """
    model_id = model_id or reference_model(catalog)
    require_models(catalog, [model_id])
    hits = """
        WITH chosen AS (
            SELECT sample_id, corruption = 'clean' AS clean, severity, correct, margin FROM predictions
            WHERE model_id = ? AND (corruption = 'clean' OR (corruption = ? AND severity <= ?))
        )
        SELECT sample_id, min(severity) FILTER (WHERE NOT clean AND NOT correct) AS first_wrong_severity,
               count(*) FILTER (WHERE NOT clean AND NOT correct) AS wrong_severities,
               any_value(margin) FILTER (WHERE clean) AS clean_margin,
               min(margin) FILTER (WHERE NOT clean) AS worst_margin
        FROM chosen
        GROUP BY sample_id
        HAVING bool_and(correct) FILTER (WHERE clean) AND count(*) FILTER (WHERE NOT clean AND NOT correct) > 0
    """
    return _with_labels(catalog, hits, [model_id, corruption, int(max_severity)],
                        "first_wrong_severity, wrong_severities DESC, sample_id")


def robust(catalog: Catalog, max_severity: int = 5) -> pl.DataFrame:
    """Samples every model gets right, clean and under every corruption up to severity `max_severity`.

    Columns: predictions (how many (model, setting) rows were checked), min_margin (the closest any
    model came to the decision boundary) and max_angle_true. Tightest first. Read from the catalog's
    per-(sample, severity) pre-aggregate sample_sums (store.aggregates), not from every row.
    """
    hits = """
        SELECT sample_id, sum(rows)::BIGINT AS predictions, min(min_margin) AS min_margin,
               max(max_angle_true) AS max_angle_true
        FROM sample_sums WHERE severity <= ?
        GROUP BY sample_id
        HAVING sum(correct) = sum(rows)
    """
    return _with_labels(catalog, hits, [int(max_severity)], "min_margin, sample_id")


def flipped_by_pruning(catalog: Catalog, model_a: str, model_b: str, corruption: str = layout.CLEAN,
                       severity: int = 0) -> pl.DataFrame:
    """Samples `model_a` gets right and `model_b` gets wrong in one setting (e.g. a model's reference vs the model).

    Columns: pred_b (model_b's wrong class), angle_true_a / angle_true_b, margin_a / margin_b. Largest
    change in angle first.
    """
    require_models(catalog, [model_a, model_b])
    hits = """
        WITH setting AS (
            SELECT model_id, sample_id, pred, correct, angle_true, margin FROM predictions
            WHERE corruption = ? AND severity = ?
        )
        SELECT a.sample_id, b.pred AS pred_b, a.angle_true AS angle_true_a, b.angle_true AS angle_true_b,
               a.margin AS margin_a, b.margin AS margin_b
        FROM setting a JOIN setting b USING (sample_id)
        WHERE a.model_id = ? AND b.model_id = ? AND a.correct AND NOT b.correct
    """
    return _with_labels(catalog, hits, [corruption, int(severity), model_a, model_b],
                        "angle_true_b - angle_true_a DESC, sample_id")


def most_fragile(catalog: Catalog, per_corruption: int = 12) -> pl.DataFrame:
    """Per corruption, the `per_corruption` samples it breaks most often: among the models that classify a
    sample correctly on clean images, how many of their (model, severity) predictions under the corruption
    are wrong. Columns: corruption, wrong, checked (those predictions), first_wrong_severity (the mildest
    severity any of them breaks at) and worst_margin. Most-broken first, then the smallest margin."""
    hits = """
        WITH right_on_clean AS (
            SELECT model_id, sample_id FROM predictions WHERE corruption = ? AND severity = 0 AND correct
        )
        SELECT p.corruption, p.sample_id, count(*) FILTER (WHERE NOT p.correct) AS wrong, count(*) AS checked,
               min(p.severity) FILTER (WHERE NOT p.correct) AS first_wrong_severity, min(p.margin) AS worst_margin
        FROM predictions p JOIN right_on_clean USING (model_id, sample_id)
        WHERE p.corruption <> ?
        GROUP BY p.corruption, p.sample_id
        HAVING count(*) FILTER (WHERE NOT p.correct) > 0
        QUALIFY row_number() OVER (PARTITION BY p.corruption ORDER BY wrong DESC, worst_margin, p.sample_id) <= ?
    """
    return _with_labels(catalog, hits, [layout.CLEAN, layout.CLEAN, int(per_corruption)],
                        "corruption, wrong DESC, worst_margin, sample_id")


_MODAL_PREDICTIONS = """
    WITH setting AS (
        SELECT p.sample_id, p.label, p.pred, m.group_id, m.arch, m.method,
               m.target_sparsity, m.model_id, r.group_id AS reference_group
        FROM predictions p JOIN models m USING (model_id)
        LEFT JOIN models r ON r.model_id = m.reference_model_id
        WHERE p.corruption = ? AND p.severity = ?
    ),
    replicates AS (SELECT group_id, count(DISTINCT model_id) AS replicates FROM setting GROUP BY group_id),
    group_references AS (SELECT group_id, min(reference_group) AS reference_group FROM setting GROUP BY group_id),
    votes AS (SELECT group_id, arch, method, target_sparsity, sample_id, label, pred, count(*) AS votes
              FROM setting GROUP BY ALL),
    modal AS (
        SELECT group_id, arch, method, target_sparsity, sample_id, label,
               first(pred ORDER BY votes DESC, pred) AS modal_pred
        FROM votes GROUP BY ALL
    ),
    pie AS (
        SELECT p.group_id, p.arch, p.method, p.target_sparsity, r.replicates, dr.replicates AS reference_replicates,
               p.sample_id, p.label, d.modal_pred AS reference_modal_pred, p.modal_pred AS pruned_modal_pred
        FROM modal p
        JOIN group_references g ON g.group_id = p.group_id
        JOIN modal d ON d.group_id = g.reference_group AND d.sample_id = p.sample_id
        JOIN replicates r ON r.group_id = p.group_id
        JOIN replicates dr ON dr.group_id = d.group_id
        WHERE p.modal_pred <> d.modal_pred
    )"""  # noqa: S608 (constant SQL)


def pruning_identified_exemplars(catalog: Catalog, corruption: str = layout.CLEAN, severity: int = 0,
                                 method: str | None = None, target_sparsity: float | None = None) -> pl.DataFrame:
    """Pruning-identified exemplars (Hooker et al. 2019, "What do compressed deep neural networks
    forget?"): samples whose modal prediction over the pruned replicates of a (arch, method, sparsity)
    group differs from the modal prediction over the replicates of its reference group (the group of its
    models' references: their base, or the chosen reference), in one setting. Ties between classes go to the smaller class index.

    With one seed per group the "modal prediction" is the single model's prediction, so the preset
    reduces to "flipped by pruning" (any change of prediction, right or wrong). Columns: group_id, method,
    target_sparsity, replicates, reference_replicates, reference_modal_pred, pruned_modal_pred. Optionally one
    method and sparsity only.
    """
    where, params = equal_to(method=method, target_sparsity=target_sparsity)
    hits = f"{_MODAL_PREDICTIONS} SELECT * EXCLUDE (arch, label) FROM pie WHERE {where}"  # noqa: S608
    return _with_labels(catalog, hits, [corruption, int(severity), *params],
                        "method, target_sparsity, group_id, sample_id")


_PIE_COUNTS = f"""
    {_MODAL_PREDICTIONS},
    groups AS (SELECT DISTINCT s.group_id, s.arch, s.method, s.target_sparsity, r.replicates,
                      g.reference_group
               FROM setting s JOIN replicates r USING (group_id) JOIN group_references g USING (group_id)),
    counted AS (SELECT group_id, count(*) AS pie_samples FROM pie GROUP BY group_id)
    SELECT g.group_id, g.arch, g.method, g.target_sparsity, g.replicates, d.replicates AS reference_replicates,
           coalesce(c.pie_samples, 0) AS pie_samples,
           g.replicates = 1 OR coalesce(d.replicates, 1) = 1 AS single_seed
    FROM groups g
    LEFT JOIN groups d ON d.group_id = g.reference_group
    LEFT JOIN counted c ON c.group_id = g.group_id
    WHERE g.reference_group IS NOT NULL
"""  # noqa: S608 (constant SQL)


def pie_counts(catalog: Catalog, corruption: str = layout.CLEAN, severity: int = 0) -> pl.DataFrame:
    """Per group with a reference group: how many samples are pruning-identified exemplars in one
    setting (see pruning_identified_exemplars), its `replicates` and the reference group's
    `reference_replicates`; `single_seed` is true where either side has one seed (PIE = flipped by pruning).
    Groups without any PIE count 0. Read from index/pie_counts.parquet while `compute index` stored it
    fresh for these model cards and references, else computed_pie_counts."""
    if catalog.is_fresh(layout.PIE_COUNTS_RECORD, stored_definition(catalog, layout.PIE_COUNTS_RECORD)):
        return catalog.query(f"SELECT * EXCLUDE (corruption, severity) FROM {stored.rows(catalog, layout.PIE_COUNTS)} "  # noqa: S608
                             "WHERE corruption = ? AND severity = ? ORDER BY method, target_sparsity, group_id",
                             [corruption, int(severity)], name="pie_counts.stored")
    return computed_pie_counts(catalog, corruption, severity)


def computed_pie_counts(catalog: Catalog, corruption: str = layout.CLEAN, severity: int = 0) -> pl.DataFrame:
    """pie_counts computed from the predictions (what index/pie_counts.parquet stores per setting)."""
    return catalog.query(f"{_PIE_COUNTS} ORDER BY g.method, g.target_sparsity, g.group_id",  # noqa: S608 (constant SQL)
                         [corruption, int(severity)], name="pie_counts")


STORED_VERSION = 1  # raise when a stored preset answer below is computed another way
# Per stored answer: its SQL and the model columns it depends on (a chosen reference changes them).
_STORED = {
    layout.PIE_COUNTS_RECORD: (_PIE_COUNTS, ("model_id", "group_id", "arch", "method", "target_sparsity",
                                             "reference_model_id")),
    layout.PRUNING_FRAGILE_RECORD: (_PRUNING_FRAGILE, ("model_id", "reference_model_id")),
}


def stored_definition(catalog: Catalog, record: str) -> str:
    """The digest of what computes stored answer `record` (layout.PIE_COUNTS_RECORD or
    PRUNING_FRAGILE_RECORD): its SQL, and the model cards and references of this catalog."""
    sql, columns = _STORED[record]
    return derived_record.digest(record, STORED_VERSION, sql, stored.models_key(catalog, columns))


PRESETS: dict[str, tuple[Callable[..., pl.DataFrame], str]] = {
    "pruning_fragile": (pruning_fragile, "right for the reference, wrong for at least k pruned models"),
    "corruption_fragile": (corruption_fragile, "right on clean images, wrong under a corruption up to a severity"),
    "robust": (robust, "right for every model under every corruption up to a severity"),
    "flipped_by_pruning": (flipped_by_pruning, "right for one model, wrong for another, in one setting"),
    "pruning_identified_exemplars": (pruning_identified_exemplars,
                                     "modal prediction of the pruned seeds differs from the reference group's (Hooker "
                                     "et al. 2019); with one seed this is flipped by pruning"),
}


# -- free filter ---------------------------------------------------------------------------------------

_ROW_COLUMNS = ", ".join(layout.FILTER_COLUMNS)  # the columns a filter may name: a fixed allow-list
# The bounds of a free filter wherever it is offered (the Samples page, the MCP server): rows fetched at
# most, and the seconds one filter may run.
FILTER_ROWS = 1000
FILTER_SECONDS = 5.0
# The seconds a count of every match may take: past them the page says "at least N" (the rows it listed),
# so a filter over a whole 100M-row study answers within its first page's time plus these.
COUNT_SECONDS = 2.0


def _filtered(catalog: Catalog, text: str, select: str, tail: str, tail_params: Sequence[object],
              timeout: float, models: Sequence[str] = ()) -> pl.DataFrame:
    """`SELECT <select> FROM rows WHERE (<compiled filter>) [AND model_id IN <models>] <tail>`; a run-time
    type error -> FilterError."""
    # sqlglot is imported by the first filter, not by the first page of a fresh server
    from analysis.filters import FilterError, compile_filter

    where, params = compile_filter(text)
    scope = f" AND model_id IN ({', '.join('?' * len(models))})" if models else ""
    sql = f"SELECT {select} FROM rows WHERE ({where}){scope} {tail}"  # noqa: S608 (checked filter, constant SQL)
    try:
        return catalog.query(sql, [*params, *models, *tail_params], timeout=timeout, name="filtered")
    except QueryTimeout:
        raise
    except QueryError as error:
        raise FilterError(f"the filter could not run: {error.reason}") from error


def filter_rows(catalog: Catalog, text: str, limit: int = 500, timeout: float = FILTER_SECONDS) -> pl.DataFrame:
    """The first `limit` prediction rows matching a user's filter (analysis.filters grammar), every filterable
    column, ordered by model, setting and sample.

    The rows are gathered model by model in that order (1, 2, 4, ... models per query, each reading only
    its models' partitions) until `limit` rows are found: the first page of a filter over a whole 100M-row
    study reads the first models' files, not every file. FilterError for text outside the grammar or a
    filter DuckDB cannot evaluate (e.g. text compared with a number); store.catalog.QueryTimeout after
    `timeout` seconds in all.
    """
    import time

    models = catalog.query("SELECT DISTINCT model_id FROM partition_summary ORDER BY model_id", name="filter_rows.models")["model_id"].to_list()
    order = f"ORDER BY model_id, {SETTING_ORDER}, sample_id LIMIT ?"
    deadline = time.monotonic() + timeout
    frames, found, start, size = [], 0, 0, 1
    while True:
        batch = models[start:start + size]
        left = deadline - time.monotonic()
        if left <= 0:
            raise QueryTimeout(f"query stopped after {timeout:.1f} s; narrow the filter", name="filter_rows")
        frame = _filtered(catalog, text, _ROW_COLUMNS, order, [int(limit) - found], left, batch)
        frames.append(frame)
        found += frame.height
        start, size = start + size, size * 2
        if found >= limit or start >= len(models):
            return pl.concat(frames)


def count_rows(catalog: Catalog, text: str, timeout: float = COUNT_SECONDS) -> int:
    """How many prediction rows match the filter (same errors as filter_rows; QueryTimeout past `timeout`)."""
    return int(_filtered(catalog, text, "count(*) AS matches", "", [], timeout)["matches"][0])
