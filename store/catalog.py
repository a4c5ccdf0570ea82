"""The DuckDB side of a store: views over its Parquet files, and the only place that runs SQL.

A `Catalog` owns one in-memory DuckDB database with these views:

    samples      samples.parquet
    models       the model cards of models.parquet, plus reference_model_id (what the model is compared
                 with: its base, or the reference the catalog was opened with) and group_id (the
                 replicate group: models that differ only in their seed share it)
    predictions  one row per prediction, hive-partitioned (model_id, corruption, severity), with every
                 scalar column of format 1 (layout.SCALAR_COLUMNS): stored ones read, the rest derived
                 (correct = pred = label; p_true = exp(-loss); confidence = exp(logit_pred - logit_true -
                 loss); cos_true = cos(angle_true)), with no join: every query reads this view
    class_values the same rows with the stored per-class lists: classes, logits and angles, derived as
                 cos_c = (logit_c - b_c) / (|W_c| |x|) (0 for a zero vector) with classifiers.parquet
    by_sample    the scalar prediction columns sorted by sample (store.sample_index), when fresh
    partition_bits, sample_sums, class_sums  the pre-aggregates (store.aggregates): their stored files when
                 fresh (store.derived_record: one rule for every derived file), else computed from the rows on every query (slower; `aggregates_hint` says how to
                 build them)
    partition_summary  per partition: rows, correct, finite rows and metric sums (class_sums, else the markers)
    layers       layers.parquet (what pruning left of each layer), with each layer's sparsity and its output
                 channels kept against the same layer of the model's reference
    rows         predictions joined with models, samples and the reference model's row for the same
                 (corruption, severity, sample): what user filters run against

Every query runs through `Catalog._run` (`query`, `arrow` and `batches` wrap it): at most one statement per
core in DuckDB at once (QUERY_SLOTS), one time limit, one
error (QueryError carrying the query's name and DuckDB's reason), and each query's name and wall time on
the QUERY_LOG logger at DEBUG. Opening a catalog reads the manifest once and lists the partitions once;
the derived files are judged against that listing (store.derived_record).

The store is refused when it holds a symbolic link or a special file (store.confine), and the database is
locked down before the first view reads a file: file access only inside the store directory, no other
external access, configuration locked. So even SQL that slipped past `analysis.filters` could not
read or write other files, load extensions or change settings. Values are always bound parameters.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from store import (
    aggregates,
    bases,
    confine,
    derived_record,
    layout,
    reader,
    sample_index,
    serving,
    vocabulary,
)
from store.layout import StoreError
from store.vocabulary import sql_literal

# Every query's name and wall time, at DEBUG: a page's time split by query.
QUERY_LOG = logging.getLogger("prunescope.query")


class QuerySlots:
    """At most `limit` statements run in DuckDB at once in this process (one per core by default: each
    already uses every core, so more only interleave), whatever the number of sessions or catalogs; a
    thread that holds a slot (a query run inside another's `with`) does not wait for a second one. Waiters
    are served first come, first served (a freed slot is handed to the oldest waiter: with a plain
    semaphore a newcomer can take it first, and under 20 sessions a page waited past a minute)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = max(1, limit or os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._running = 0
        self._waiting: collections.deque[threading.Event] = collections.deque()
        self._held = threading.local()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            with self._lock:
                turn = None
                if self._running < self.limit and not self._waiting:
                    self._running += 1
                else:
                    turn = threading.Event()
                    self._waiting.append(turn)
            if turn is not None:
                turn.wait()  # the thread that frees a slot hands it over
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                with self._lock:
                    if self._waiting:
                        self._waiting.popleft().set()
                    else:
                        self._running -= 1


QUERY_SLOTS = QuerySlots()


class QueryError(StoreError):
    """DuckDB could not run a query on the store: `name` is the query's (the caller's name for it), `reason`
    DuckDB's (or the time limit's) words; the message names the store and the reason."""

    def __init__(self, message: str, *, name: str = "query", reason: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.reason = message if reason is None else reason


class QueryTimeout(QueryError):
    """A query ran past its time limit and was interrupted."""


def read_predictions(files: Sequence[Path]) -> str:
    """DuckDB SQL reading these prediction files with their hive partition keys typed.

    An explicit file list, not a glob: DuckDB would expand a glob again on every query, and on thousands of
    partitions the listing costs as much as the scan.
    """
    listing = "[" + ", ".join(sql_literal(path) for path in files) + "]"
    return (f"read_parquet({listing}, hive_partitioning = true, "
            "hive_types = {'model_id': VARCHAR, 'corruption': VARCHAR, 'severity': INTEGER})")


# cos between a feature of length `length` and class c's weight row, from the class's logit, |W_c| and b_c:
# clamped to [-1, 1], 0 for a zero vector (as compute.geometry), NaN where the row's values are not finite.
_COSINE_MACRO = """
    CREATE MACRO class_cosine(logit, bias, norm, length) AS
    CASE WHEN norm * length = 0 THEN 0.0
         WHEN NOT isfinite((logit - bias) / (norm * length)) THEN 'NaN'::DOUBLE
         ELSE greatest(-1.0, least(1.0, (logit - bias) / (norm * length))) END
"""
# Format 2: every scalar of layout.SCALAR_COLUMNS, the ones a file does not store derived from those it
# does. {true} and {pred} are the positions of the true and the predicted class in the row's `classes`.
_SCALARS_V2 = """
    sample_id, label, pred, pred = label AS correct, loss,
    exp(logits[{pred}] - logits[{true}] - loss)::FLOAT AS confidence, exp(-loss)::FLOAT AS p_true,
    feature_norm, weight_norm_true, cos(radians(angle_true))::FLOAT AS cos_true, angle_true, angle_pred,
    angle_nearest_wrong, margin, finite, model_id, corruption, severity
"""
# Per-class angles of the kept classes, from their logits and the model's row of classifier_lists.
_ANGLES_V2 = """
    list_transform(range(len(classes)), lambda i: degrees(acos(class_cosine(
        logits[i + 1], biases[classes[i + 1] + 1], weight_norms[classes[i + 1] + 1], feature_norm)))) AS angles
"""


_DUCK_TYPES = {pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN",
               pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR"}

_CARD_TYPE_WORDS = {pa.int64(): "a whole number", pa.float64(): "a number", pa.string(): "text"}


def _empty_select(arrow_schema: pa.Schema) -> str:
    """A typed SELECT with no rows, so queries on a store without predictions return empty frames."""
    columns = []
    for f in arrow_schema:
        sql_type = (f"{_DUCK_TYPES[f.type.value_type]}[]" if pa.types.is_list(f.type)
                    else f"FLOAT[{f.type.list_size}]" if pa.types.is_fixed_size_list(f.type)
                    else _DUCK_TYPES[f.type])
        columns.append(f"CAST(NULL AS {sql_type}) AS {f.name}")
    return "SELECT " + ", ".join(columns) + " WHERE false"


class Catalog:
    """Read-only views over one store directory; every query returns a Polars frame."""

    def __init__(self, root: str | Path, threads: int | None = None, memory_limit: str | None = None,
                 reference: str | None = None, manifest: dict[str, Any] | None = None,
                 serving_build: Path | None = None) -> None:
        """`reference`: the model every other model is compared with (default: each model's base).
        `manifest`: the store's manifest when the caller has just read it (the dashboard validates it
        first), so a store's manifest is parsed once; else read here. `serving_build`: the partial
        serving copy its builder writes (store.derived.build_serving), attached writable as
        store.serving.BUILD_ALIAS; the catalog then reads the Parquet files, never a serving copy."""
        self.root = Path(root).resolve()
        self.reference = reference
        self._serving_build = serving_build
        self.serving_error: str | None = None  # why a serving copy on disk could not be opened
        self._fresh: dict[tuple[str, str], bool] = {}  # is_fresh's answers
        # Before any file of the store is read; predictions/ when its files are (partition_files).
        confine.refuse_not_plain(self.root, skip=(layout.PREDICTIONS,))
        self._partition_files: list[Path] | None = None
        self.manifest = reader.read_manifest(self.root) if manifest is None else manifest
        self.num_classes = int(self.manifest["num_classes"])
        self.per_class = layout.PerClass.of(self.manifest)
        # True when every row holds every class's values.
        self.keeps_all_classes = self.per_class.keeps_all(self.num_classes)
        self._connection = duckdb.connect(":memory:")
        if threads:
            self._connection.execute(f"SET threads = {int(threads)}")
        if memory_limit:  # builders of derived files: sorts past the limit spill into the store's _tmp/
            self._connection.execute("SET memory_limit = ?", [memory_limit])
            self._connection.execute("SET temp_directory = ?", [str(self.root / "_tmp" / f"duckdb.{os.getpid()}")])
        # Parquet footers are read once per file and kept: later queries skip straight to the data.
        self._connection.execute("SET parquet_metadata_cache = true")
        self._lock_down()  # before the views: creating one reads its first file
        self._create_views()

    # -- set-up ---------------------------------------------------------------------------------
    def _create_views(self) -> None:
        con = self._connection
        path = self.root / layout.SAMPLES
        if path.exists():
            reader.parquet_metadata(path)  # the rows it declares fit its size: DuckDB never allocates more
        # The store's own path, quoted by sql_literal: not user input.
        con.execute("CREATE VIEW samples AS " + (f"SELECT * FROM read_parquet({sql_literal(path)})"  # noqa: S608
                                                 if path.exists() else _empty_select(layout.SAMPLE_SCHEMA)))
        self._create_model_views()
        self._create_layer_view()
        # What derived files are checked against (store.derived_record): the store's generation, and its
        # prediction files only when a record of another generation needs them (listed once, then kept: a new
        # Catalog sees new files). A fresh serving copy of the current generation lists none.
        self.inputs = derived_record.Inputs.current(self.root)
        self.has_serving = self._attach_serving() and self.has_predictions
        self._create_prediction_views()
        self.has_sample_index = self.has_predictions and sample_index.is_fresh(self.root, inputs=self.inputs)
        if self.has_sample_index:
            index = self.root / layout.INDEX / layout.BY_SAMPLE
            con.execute(f"CREATE VIEW by_sample AS SELECT * FROM read_parquet({sql_literal(index)})")  # noqa: S608
        self._create_aggregate_views()
        self._create_partition_summary(len(self.inputs.files))
        if self.inputs.listed:  # listed anyway: a store with a foreign folder is refused at once
            self.partition_files  # noqa: B018 (checks them)
        if self.has_serving and self.reference is None:  # each row carries its base's columns: no self-join
            references = ", ".join(serving.REFERENCE_COLUMNS)
            con.execute(f"""
                CREATE VIEW rows AS
                SELECT p.* EXCLUDE ({references}), m.arch, m.method, m.target_sparsity, m.sparsity, m.seed,
                       s.label_name, {", ".join(f"p.{column}" for column in serving.REFERENCE_COLUMNS)}
                FROM (SELECT {self._scalars}, {references} FROM {serving.ALIAS}.{serving.TABLE}) p
                JOIN models m USING (model_id)
                JOIN samples s USING (sample_id)
            """)  # noqa: S608 (constant SQL)
            return
        con.execute("""
            CREATE VIEW rows AS
            SELECT p.*, m.arch, m.method, m.target_sparsity, m.sparsity, m.seed, s.label_name,
                   d.correct AS reference_correct, d.feature_norm AS reference_feature_norm,
                   d.angle_true AS reference_angle_true, d.margin AS reference_margin
            FROM predictions p
            JOIN models m USING (model_id)
            JOIN samples s USING (sample_id)
            LEFT JOIN predictions d
              ON d.model_id = m.reference_model_id AND d.corruption = p.corruption
             AND d.severity = p.severity AND d.sample_id = p.sample_id
        """)

    def _attach_serving(self) -> bool:
        """Attach the serving copy (store.serving) read-only when it is fresh (store.derived_record, with
        the models' base references in its definition) and opens; else leave it out and read the Parquet
        files. The builder's catalog attaches the partial copy it writes instead."""
        con = self._connection
        if self._serving_build is not None:
            con.execute(f"ATTACH {sql_literal(self._serving_build)} AS {serving.BUILD_ALIAS}")
            return False
        path = self.root / layout.INDEX / layout.SERVING
        if not path.is_file():
            return False
        try:
            con.execute(f"ATTACH {sql_literal(path)} AS {serving.ALIAS} (READ_ONLY)")
        except duckdb.Error as error:  # damaged: the Parquet files answer
            self.serving_error = f"{layout.INDEX}/{layout.SERVING}: {str(error).strip()}"
            return False
        references = self.query("SELECT m.model_id, b.model_id AS reference FROM models_file m "
                                "LEFT JOIN models_file b ON b.model_id = m.base", name="serving.references").rows()

        def rows(_: Path) -> int:
            found = self.query(f"SELECT count(*) AS n FROM {serving.ALIAS}.{serving.TABLE}",  # noqa: S608 (constant SQL)
                               name="serving.rows")
            return int(found["n"][0])

        fresh = derived_record.is_fresh(self.root, layout.SERVING_RECORD, definition=serving.definition(references),
                                        inputs=self.inputs, count=rows)
        if not fresh:
            con.execute(f"DETACH {serving.ALIAS}")
        return fresh

    @property
    def has_predictions(self) -> bool:
        """Whether the store holds prediction files (known without listing when a record of the current
        generation names them)."""
        return bool(self.inputs.files)

    @property
    def partition_files(self) -> list[Path]:
        """The store's prediction files (store.derived_record.Inputs: as listed once, or as named by a record
        of the current generation), once predictions/ holds only plain files and model-id folders: checked
        here, before DuckDB or a builder reads one."""
        if self._partition_files is None:
            confine.refuse_not_plain(self.root / layout.PREDICTIONS, relative_to=self.root)
            parts = [self.root / name for name in self.inputs.files]
            self._refuse_hostile_folders(parts)
            self._partition_files = parts
        return self._partition_files

    def is_fresh(self, name: str, definition: str) -> bool:
        """Whether the derived file recorded as `name` (store.derived_record) was built by `definition` from
        this catalog's prediction files: judged once per catalog (the analysis layer's stored answers)."""
        key = (name, definition)
        if key not in self._fresh:
            self._fresh[key] = self.has_predictions and derived_record.is_fresh(
                self.root, name, definition=definition, inputs=self.inputs)
        return self._fresh[key]

    @property
    def serving_hint(self) -> str | None:
        """None when the serving copy is attached (or there are no predictions), else a line saying that the
        pages read the Parquet partitions and how to build it."""
        if self.has_serving or not self.has_predictions or self._serving_build is not None:
            return None
        return serving.HINT.format(root=self.root)

    def _create_model_views(self) -> None:
        """`models`: the model cards (card columns an older store lacks read as null), each model's
        reference and its replicate group.

        A model's reference is the chosen one (`reference`; none for that model itself), else its base when
        the store holds it: the catalog only reads `base` (set at extraction; for rows written before model
        cards, filled once by `compute migrate`, store.bases: a store whose rows still wait for it is
        refused with that hint). Models form a replicate group when they differ only in their seed; a model
        without a seed is its own group.
        """
        con = self._connection
        path = self.root / layout.MODELS
        if path.exists():
            reader.parquet_metadata(path)  # the rows it declares fit its size: DuckDB never allocates more
        empty = _empty_select(layout.MODEL_SCHEMA)
        # The typed empty select first: card columns the file lacks come out null, typed.
        stored = f" UNION ALL BY NAME SELECT * FROM read_parquet({sql_literal(path)})"  # noqa: S608 (store path)
        con.execute(f"CREATE VIEW models_stored AS {empty}" + (stored if path.exists() else ""))
        # Every card column as its schema's type: a value stored as another type (text where a number
        # belongs) reads as null, named once in `card_problems`, so no page computes with it.
        typed = ", ".join(f"TRY_CAST({f.name} AS {_DUCK_TYPES[f.type]}) AS {f.name}" for f in layout.MODEL_SCHEMA)
        con.execute(f"CREATE VIEW models_file AS SELECT * REPLACE ({typed}) FROM models_stored")  # noqa: S608
        cards = self.query("SELECT model_id, arch, method, seed, base, loader FROM models_file", name="models_file")
        self._refuse_hostile_ids(cards["model_id"].to_list(), cards["base"].to_list())
        bases.check(self.root, cards.to_dicts())
        self.card_problems = self._card_problems()
        con.execute("CREATE TABLE chosen_reference AS SELECT ?::VARCHAR AS model_id", [self.reference])
        con.execute("""
            CREATE VIEW models AS
            SELECT m.*,
                   CASE WHEN c.model_id IS NULL THEN (SELECT b.model_id FROM models_file b WHERE b.model_id = m.base)
                        WHEN c.model_id <> m.model_id THEN c.model_id END AS reference_model_id,
                   CASE WHEN m.seed IS NULL THEN m.model_id
                        ELSE format('{}-{}-{:g}', m.arch, m.method, m.target_sparsity * 100) END AS group_id
            FROM models_file m CROSS JOIN chosen_reference c
        """)
        if self.reference is not None:
            known = self.query("SELECT model_id FROM models_file", name="reference_check")["model_id"].to_list()
            if self.reference not in known:
                raise StoreError(f"reference model {self.reference!r} is not in the store; its models: "
                                 f"{', '.join(sorted(known))}")

    def _create_layer_view(self) -> None:
        """`layers`: layers.parquet (empty when the store has none: `has_layers` says which), each row with its
        sparsity and, from the same layer of the model's reference, the reference's output channels and the
        fraction of them that still hold a non-zero weight (`channels_kept`; null without a reference or a
        row of that layer in it). The file is optional, so a damaged one costs only its own questions: the
        view is then empty and `layers_error` says what is wrong (analysis.layers raises it)."""
        path = self.root / layout.LAYERS
        self.has_layers = path.exists()
        self.layers_error: StoreError | None = None
        body = _empty_select(layout.LAYER_SCHEMA)
        if self.has_layers:
            try:  # the rows it declares fit its size (DuckDB never allocates more), and the columns are ours
                found = reader.parquet_metadata(path).schema.to_arrow_schema()
                wrong = [f.name for f in layout.LAYER_SCHEMA if f.name not in found.names
                         or found.field(f.name).type != f.type]
                if wrong:
                    raise StoreError(f"{path}: column(s) {wrong} missing or not of the types of {layout.LAYERS}")
                body = f"SELECT * FROM read_parquet({sql_literal(path)})"  # noqa: S608 (store path)
            except StoreError as error:
                self.layers_error = StoreError(f"{error} ({layout.LAYERS_HINT})")
        self._connection.execute(f"CREATE VIEW layers_file AS {body}")
        self._connection.execute("""
            CREATE VIEW layers AS
            SELECT l.*, 1.0 - l.num_nonzero / greatest(l.num_weights, 1) AS sparsity, m.reference_model_id,
                   r.out_channels AS reference_out_channels,
                   l.live_out_channels / r.out_channels AS channels_kept
            FROM layers_file l JOIN models m USING (model_id)
            LEFT JOIN layers_file r ON r.model_id = m.reference_model_id AND r.layer = l.layer
        """)

    def _refuse_hostile_ids(self, ids: Sequence[Any], named_bases: Sequence[Any]) -> None:
        """StoreError naming the first model id (or base) of models.parquet that is not a model id
        (store.vocabulary.is_model_id: the pattern extraction writes): a backslash cuts a hive key, a
        leading `=` breaks SQL built from ids; such a store is refused, never shown without that model."""
        for what, values in (("model id", ids), ("base", named_bases)):
            bad = next((value for value in values if not (value is None and what == "base")
                        and not vocabulary.is_model_id(value)), "")
            if bad != "":
                raise StoreError(f"{layout.MODELS}: {what} {str(bad)!r:.80} is not a model id (letters, digits, '.', "
                                 "'-' and single '_', at most 128); refused (`python -m compute verify` names every "
                                 "problem)")

    @staticmethod
    def _refuse_hostile_folders(parts: Sequence[Path]) -> None:
        """StoreError naming the first partition folder whose model id is not one (see _refuse_hostile_ids)."""
        for folder in sorted({part.parent.parent.parent.name for part in parts}):
            if not vocabulary.is_model_id(folder.removeprefix("model_id=")):
                raise StoreError(f"{layout.PREDICTIONS}/{folder!r:.90}: not a model id; refused (`python -m compute "
                                 "verify` names every problem)")

    def _card_problems(self) -> list[str]:
        """One line per model whose card holds a value of another type than its column's (read as null), or
        no value where every card has one (model_id, arch, method, target_sparsity)."""
        checks = [f"CASE WHEN {f.name} IS NOT NULL AND TRY_CAST({f.name} AS {_DUCK_TYPES[f.type]}) IS NULL "
                  f"THEN '{f.name} ' || left({f.name}::VARCHAR, 40) || ' is not {_CARD_TYPE_WORDS[f.type]}' END"
                  for f in layout.MODEL_SCHEMA]
        checks += [f"CASE WHEN {name} IS NULL THEN '{name} is missing' END" for name in layout.CARD_REQUIRED]
        found = self.query(f"SELECT model_id::VARCHAR AS model_id, concat_ws('; ', {', '.join(checks)}) AS problem "  # noqa: S608
                           "FROM models_stored", name="card_problems")  # (constant column names)
        return [f"model {model_id!r:.80}: {problem}" for model_id, problem in found.iter_rows() if problem]

    def _create_aggregate_views(self) -> None:
        """The pre-aggregates (store.aggregates): stored files when fresh, else their definitions."""
        recorded, self.aggregates_damage = aggregates.state(
            self.root, inputs=self.inputs, num_samples=int(self.manifest["num_samples"])) \
            if self.has_predictions else (False, None)
        self.has_aggregates = recorded and self.aggregates_damage is None  # a damaged file is never served
        definitions = aggregates.definitions(self.manifest["num_samples"], self.by_sample)
        for name in aggregates.NAMES:
            body = (aggregates.stored_view(self.root, name, sql_literal) if self.has_aggregates
                    else definitions[name])
            self._connection.execute(f"CREATE VIEW {name} AS {body}")

    @property
    def aggregates_hint(self) -> str | None:
        """None when the pre-aggregates are stored and fresh (or there is nothing to aggregate), else a line
        saying that views over every row compute them on each query and how to build them."""
        if self.has_aggregates or not self.has_predictions:
            return None
        what = (f"pre-aggregates damaged ({self.aggregates_damage}), so not used: views read" if self.aggregates_damage
                else "pre-aggregates missing or stale, so views read")
        return f"{self.root}: {what} every prediction row (slower); " + aggregates.HINT.format(root=self.root)

    def _create_prediction_views(self) -> None:
        """Format 2 files hold what cannot be derived; labels and classifier norms are joined in."""
        con = self._connection
        con.execute(_COSINE_MACRO)
        # A small table held in memory: class_values rows look their classifier up here.
        classifiers = reader.read_classifiers(self.root)
        con.register("classifiers_arrow", classifiers)
        con.execute("""CREATE TABLE classifier_lists AS
                       SELECT model_id, list(weight_norm ORDER BY class) AS weight_norms,
                              list(bias ORDER BY class) AS biases
                       FROM classifiers_arrow GROUP BY model_id""")
        con.unregister("classifiers_arrow")
        if self.has_serving:  # the same columns in the same order, from the serving copy
            body = (f"SELECT * EXCLUDE ({', '.join(serving.REFERENCE_COLUMNS)}) "  # noqa: S608 (constant SQL)
                    f"FROM {serving.ALIAS}.{serving.TABLE}")
        elif self.has_predictions:
            body = f"SELECT * FROM {read_predictions(self.partition_files)}"  # noqa: S608 (store paths, quoted)
        else:
            empty = pa.schema([*layout.prediction_schema(self.num_classes, 2), pa.field("model_id", pa.string()),
                               pa.field("corruption", pa.string()), pa.field("severity", pa.int32())])
            body = _empty_select(empty)
        con.execute(f"CREATE VIEW prediction_files AS {body}")
        # Every class kept, ascending: class c sits at position c + 1; else look it up in the row's list.
        true, pred = (("label + 1", "pred + 1") if self.keeps_all_classes
                      else ("list_position(classes, label)", "list_position(classes, pred)"))
        scalars = self._scalars = _SCALARS_V2.format(true=true, pred=pred)
        con.execute(f"CREATE VIEW predictions AS SELECT {scalars} FROM prediction_files")  # noqa: S608 (constant SQL)
        con.execute(f"""CREATE VIEW class_values AS SELECT {scalars}, classes, logits, {_ANGLES_V2}
                        FROM prediction_files LEFT JOIN classifier_lists USING (model_id)""")  # noqa: S608

    def _create_partition_summary(self, num_files: int) -> None:
        """View `partition_summary`: per (model, corruption, severity) rows, correct, finite and metric sums.

        Summed over the classes of the class_sums pre-aggregate when it is fresh (one small file); else read
        from the completion markers (written with each partition) when every prediction file has a marker
        with sums: thousands of partitions then cost one small table, not a scan. Otherwise (a store from an
        older writer, or a file published without its marker) it is computed from the files.
        """
        sums = ", ".join(f"{name}_sum" for name in layout.SUMMARY_METRICS)
        if self.has_aggregates:
            summed = ", ".join(f"sum({name}_sum) AS {name}_sum" for name in layout.SUMMARY_METRICS)
            self._connection.execute(f"""CREATE VIEW partition_summary AS
                SELECT model_id, corruption, severity, sum(rows)::BIGINT AS rows, sum(correct)::BIGINT AS correct,
                       sum(finite)::BIGINT AS finite, {summed}
                FROM class_sums GROUP BY model_id, corruption, severity""")  # noqa: S608 (constant SQL)
            return
        try:  # a damaged marker (verify names it) costs a scan of the files, never the store
            markers = reader.complete_partitions(self.root)
            usable = num_files and len(markers) == num_files and all("sums" in m for m in markers)
            columns = {"model_id": ("VARCHAR", [m["model_id"] for m in markers]),
                       "corruption": ("VARCHAR", [m["corruption"] for m in markers]),
                       **{key: ("INTEGER" if key == "severity" else "BIGINT", [int(m[key]) for m in markers])
                          for key in ("severity", "rows", "correct", "finite")},
                       **{f"{name}_sum": ("DOUBLE", [float(m["sums"][name]) for m in markers])
                          for name in layout.SUMMARY_METRICS}} if usable else None
        except (OSError, ValueError, KeyError, TypeError):
            columns = None
        if columns:
            # A table from bound lists (not a registered Arrow object, whose first use imports pandas: a
            # second on a fresh server): query cursors see the database's tables only.
            select = ", ".join(f"unnest(${i})::{sql_type} AS {name}"
                               for i, (name, (sql_type, _)) in enumerate(columns.items(), start=1))
            self._connection.execute(f"CREATE TABLE partition_markers AS SELECT {select}",  # noqa: S608 (constant names)
                                     [values for _, values in columns.values()])
            body = f"SELECT model_id, corruption, severity, rows, correct, finite, {sums} FROM partition_markers"  # noqa: S608 (constant SQL)
        else:
            body = (f"SELECT model_id, corruption, severity, count(*) AS rows, "  # noqa: S608 (constant SQL)
                    f"sum(correct::BIGINT) AS correct, count(*) FILTER (WHERE finite) AS finite, "
                    f"{aggregates.metric_sums()} FROM predictions GROUP BY ALL")
        self._connection.execute(f"CREATE VIEW partition_summary AS {body}")

    def _lock_down(self) -> None:
        con = self._connection
        con.execute("SET allowed_directories = [?]", [str(self.root)])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    # -- queries --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _run(self, sql: str, params: Sequence[Any] = (), *, name: str,
             timeout: float | None = None) -> Iterator[duckdb.DuckDBPyRelation]:
        """The one door of every query: `sql` on a fresh cursor (thread-safe), interrupted after `timeout`
        seconds (QueryTimeout), DuckDB's errors as QueryError carrying `name` and the reason; the query's
        name and wall time go to QUERY_LOG at DEBUG. The relation is consumed inside the `with`."""
        cursor = self._connection.cursor()
        timer = threading.Timer(timeout, cursor.interrupt) if timeout else None
        start = time.perf_counter()
        try:
            with QUERY_SLOTS.slot():  # the time limit starts when DuckDB does
                if timer:
                    timer.start()
                yield cursor.sql(sql, params=list(params))
        except duckdb.InterruptException as error:
            reason = f"query stopped after {timeout or 0:.1f} s; narrow the filter"
            raise QueryTimeout(reason, name=name, reason=reason) from error
        except duckdb.Error as error:
            reason = str(error).strip() or type(error).__name__
            raise QueryError(f"{self.root}: {reason}", name=name, reason=reason) from error
        finally:
            if timer:
                timer.cancel()
            cursor.close()
            QUERY_LOG.debug("query %s: %.4f s", name, time.perf_counter() - start)

    def query(self, sql: str, params: Sequence[Any] = (), *, name: str, timeout: float | None = None) -> pl.DataFrame:
        """Run one statement named `name` (the log's and errors' word for it); interrupt it after `timeout` s."""
        with self._run(sql, params, name=name, timeout=timeout) as result:
            return result.pl()

    def class_angles_sql(self, every_class: bool = False) -> str:
        """SQL for the per-class angles of a `class_values` row: the stored classes' (aligned with `classes`),
        or with `every_class` one per class in class order, where a class a top-k row does not keep counts
        as 90 degrees (orthogonal: its logit is below the row's k largest, its exact angle is not stored)."""
        if not every_class or self.keeps_all_classes:
            return "angles"
        return (f"list_transform(range({self.num_classes}), "
                "lambda c: coalesce(angles[list_position(classes, c::SMALLINT)], 90.0))")

    @property
    def by_sample(self) -> str:
        """The view to read for per-sample questions: the by-sample index when fresh, else predictions."""
        return "by_sample" if self.has_sample_index else "predictions"

    def arrow(self, sql: str, params: Sequence[Any] = (), *, name: str) -> pa.Table:
        """Run one statement and return an Arrow table (for writing derived files, e.g. the by-sample index)."""
        with self._run(sql, params, name=name) as result:
            return result.to_arrow_table()

    def batches(self, sql: str, rows: int, *, name: str) -> Iterator[pa.RecordBatch]:
        """Run one statement and yield its result in Arrow batches of about `rows` rows, never all at once
        (a derived file of a 100M-row store is written batch by batch)."""
        with self._run(sql, name=name) as result:
            yield from result.to_arrow_reader(rows)

    def close(self) -> None:
        self._connection.close()
