"""A study an agent can ask: the MCP server of `python -m compute mcp --store DIR` (stdio, the official `mcp`
SDK), so an assistant answers "which samples does the 90 % model lose under fog" by calling tools.

Every tool reads one store through the notebook API (analysis.open_study) and the pixels the models saw
(compute.pixels); none writes. Answers are bounded: at most MAX_ROWS rows and MAX_BYTES of text per answer,
with a note saying what was left out and how to narrow the question; the free filter is the Samples page's
(analysis.filters.compile_filter through analysis.presets.filter_rows, the same FILTER_ROWS and
FILTER_SECONDS). A bad argument is a one-line tool error naming it. Files outside the store (checkpoints,
`--corrupted-dir` images) are read only under the allowed roots (`--allow-root`, $PRUNESCOPE_ALLOW_ROOTS;
store.confine), as on the dashboard.
"""

from __future__ import annotations

import inspect
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from analysis import open_study, presets, report
from analysis.matrices import CELL_METRICS
from compute import pixels
from store import layout
from store.layout import StoreError

MAX_ROWS = 200  # rows of one answer at most
MAX_BYTES = 60_000  # characters of one text answer at most (a long answer fills an agent's context)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)
INSTRUCTIONS = """A prunescope study: models (a base and the models pruned from it), their predictions on
clean and corrupted test images (corruption 'clean' has severity 0), and per-sample geometry. Start with
`models` (each model's method, sparsity and reference_model_id); `flipped_by_pruning` answers "which samples
does model M lose under a corruption that its reference gets right"; `filter_rows` takes the free filter
language (e.g. reference_correct AND NOT correct AND corruption = 'fog'); `sample` shows one sample with its
image. Answers are JSON with at most a few hundred rows; narrow a question that says it was cut."""


def one_line(error: BaseException) -> str:
    """An error as the single line a tool answers with."""
    return " ".join(str(error).split()) or type(error).__name__


def frame_text(frame: pl.DataFrame, rows: int = MAX_ROWS, **facts: object) -> str:
    """A frame as JSON ({rows, columns, data, ...facts}), at most `rows` rows and MAX_BYTES characters; a
    `cut` note says how many rows were left out."""
    shown = frame.head(rows)
    while True:
        text = json.dumps({**facts, "rows": frame.height, "columns": shown.columns, "data": shown.rows(),
                           **({"cut": f"showing {shown.height} of {frame.height} rows; narrow the question"}
                              if shown.height < frame.height else {})}, default=str, allow_nan=False)
        if len(text) <= MAX_BYTES or shown.height == 0:
            return text
        shown = shown.head(max(shown.height * MAX_BYTES // len(text) - 1, 0))


def _finite(frame: pl.DataFrame) -> pl.DataFrame:
    """NaN and infinite floats as null: JSON has no NaN."""
    return frame.with_columns(pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c)
                              for c, dtype in frame.schema.items() if dtype.is_float())


class StudyTools:
    """The tools, each a method over one open study; calls run one at a time (one DuckDB connection)."""

    def __init__(self, store: str | Path) -> None:
        self.store = Path(store)
        self.study = open_study(self.store)
        self._lock = threading.Lock()

    def models(self) -> str:
        """Every model card: model_id, arch, method, target and measured sparsity, seed, base and the
        reference_model_id each model is compared with, clean accuracy."""
        return frame_text(_finite(self.study.models().drop("hparams", "loader", strict=False)))

    def evaluation_matrix(self, metric: str = "accuracy", reference: str | None = None,
                          group_by: str = "model") -> str:
        """The evaluation matrix: the mean of `metric` per model (or per method, group_by='method') and
        setting (corruption, severity), beside its reference's value; `reference` compares every model with
        that model id instead of its base. Metrics: """
        return frame_text(_finite(self.study.matrix(metric, reference, group_by)), metric=metric)

    def filter_rows(self, expression: str, limit: int = 100) -> str:
        """Prediction rows matching a free filter (the dashboard's grammar: columns such as model_id,
        corruption, severity, sample_id, label, pred, correct, margin, angle_true, reference_correct; AND,
        OR, NOT, comparisons, IN, BETWEEN). Ordered by model, setting and sample; at most `limit` rows."""
        limit = max(1, min(int(limit), presets.FILTER_ROWS, MAX_ROWS))
        rows = self.study.filter(expression, limit + 1)  # within presets.FILTER_SECONDS, as on the Samples page
        more = {"cut": f"more than {limit} rows match; narrow the filter"} if rows.height > limit else {}
        return frame_text(_finite(rows.head(limit)), limit=limit, **more)

    def flipped_by_pruning(self, model: str, corruption: str = layout.CLEAN, severity: int = 0,
                           reference: str | None = None) -> str:
        """Samples `model` gets wrong and its reference (its base, or the model id `reference`) gets right
        in one setting (corruption and severity; clean images: corruption 'clean', severity 0), largest
        change of the angle to the true class first."""
        return frame_text(_finite(self.study.flipped(model, corruption, severity, reference)), model=model,
                          corruption=corruption, severity=severity)

    def preset(self, name: str, arguments: dict[str, Any] | None = None) -> str:
        """One of the Samples page's preset questions by name with its arguments (a JSON object): """
        if name not in presets.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(presets.PRESETS)}")
        function = presets.PRESETS[name][0]
        try:
            bound = inspect.signature(function).bind(self.study.catalog, **(arguments or {}))
        except TypeError as error:
            raise ValueError(f"preset {name}: {error}; it takes {_parameters(function)}") from None
        return frame_text(_finite(function(*bound.args, **bound.kwargs)), preset=name)

    def sample(self, sample_id: int, corruption: str = layout.CLEAN, severity: int = 0) -> list[str | Image]:
        """One sample's predictions across every model and setting (pred, correct, margin, angle to its
        class, ...) and its image as the models saw it in one setting (default: the clean image), PNG."""
        rows = frame_text(_finite(self.study.sample(sample_id)), sample_id=sample_id)
        try:
            image = pixels.image(self.store, sample_id, corruption, severity)
        except StoreError as error:  # the values stand on their own; say why the picture cannot be shown
            return [rows, f"no image of sample {sample_id} ({corruption}, severity {severity}): {one_line(error)}"]
        return [rows, Image(data=pixels.png(image), format="png")]

    def layers(self, models: list[str] | None = None, reference: str | None = None) -> str:
        """What pruning left of each layer, one row per (model, layer) in network order: weights, non-zeros,
        sparsity, output channels, channels kept against the reference's same layer (its base, or the model
        id `reference`), weight norm; `models` limits it to those model ids (default: every model)."""
        return frame_text(_finite(self.study.layers(models, reference)))

    def report(self, by: str = "group", columns: str = "full") -> str:
        """The paper table as Markdown: one row per replicate group (by='group') or model (by='model'), each
        cell mean [95 % interval], the best per column in bold, † where a row differs from its reference
        (paired test, Holm); columns 'full' or 'summary' (families)."""
        table = self.study.report(by, columns)
        text = report.render_report(table, "markdown", level=by, columns=columns,
                                    notes=report.report_notes(self.study.catalog, by))
        return text if len(text) <= MAX_BYTES else text[:MAX_BYTES] + "\n\n(cut: ask for columns='summary')\n"

    def tools(self) -> list[Callable[..., Any]]:
        return [self.models, self.evaluation_matrix, self.filter_rows, self.flipped_by_pruning, self.preset,
                self.sample, self.layers, self.report]

    def guarded(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """`method` run alone (one connection), its bad-input errors as one-line tool errors."""
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                try:
                    return method(*args, **kwargs)
                except (ValueError, OSError) as error:  # StoreError, FilterError, QueryError are ValueErrors
                    raise ToolError(one_line(error)) from None

        call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
        call.__annotations__ = method.__annotations__
        call.__name__, call.__doc__ = method.__name__, _described(method)
        return call


def _parameters(function: Callable[..., Any]) -> str:
    return ", ".join(str(p) for p in list(inspect.signature(function).parameters.values())[1:])


def _described(method: Callable[..., Any]) -> str:
    """A tool's description: its doc, with the choices it offers where the doc ends in a colon."""
    doc = inspect.getdoc(method) or ""
    if method.__name__ == "evaluation_matrix":
        return doc + ", ".join(CELL_METRICS)
    if method.__name__ == "preset":
        return doc + "; ".join(f"{name}({_parameters(f)}): {what}" for name, (f, what) in presets.PRESETS.items())
    return doc


def server(store: str | Path) -> MCPServer:
    """The MCP server of one store: every StudyTools tool, read-only."""
    tools = StudyTools(store)
    mcp = MCPServer("prunescope", instructions=INSTRUCTIONS)
    for method in tools.tools():
        mcp.tool(annotations=READ_ONLY, structured_output=False)(tools.guarded(method))
    return mcp


def serve(store: str | Path) -> None:
    """Answer on stdin/stdout until the client closes them (stderr carries the log)."""
    print(f"prunescope MCP server on {store} (stdio)", file=sys.stderr)
    server(store).run("stdio")
