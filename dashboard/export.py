"""The static export: a study as a folder that opens from disk in a browser, with no server and no network.

`python -m compute export --store DIR --out SITE` (compute.commands.export parses the command line and runs
this module in a child process: compute never imports the dashboard, docs/layers.md). SITE holds
index.html, the Vega bundle it draws its charts with (assets/vega.js, from vl-convert-python, so the charts
keep their tooltips and click selections offline) and the gallery's PNG images (images/); nothing in it
names anything outside the folder. Its sections, linked from a menu and to each other (a click on a model
opens its row of the model table, on a matrix cell the gallery of its corruption): the overview with the
lineage, the evaluation matrix with its 95 % intervals, the similarity map, the robustness predictors,
the paper table and the gallery of the `--fragile` most fragile samples under each corruption. The charts
are the dashboard's (dashboard/charts) on the same named queries; every store text is escaped for HTML
(analysis.escape.html), and inside the chart specs `<`, `>` and `&` are JSON escapes, so no store text
can close the script that holds them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import polars as pl
import vl_convert

from analysis import embeddings, escape, matrices, predictors, presets, queries, report, uncertainty
from compute import pixels
from compute.__main__ import describe_os_error
from compute.commands import export as command
from dashboard.charts.common import setting_order
from dashboard.charts.matrix import MATRIX_ROWS, by_method, interval_matrix
from dashboard.charts.overview import accuracy_vs_sparsity, lineage_tree
from dashboard.charts.predictors import predictor_scatter
from dashboard.charts.similarity import model_map
from store import layout
from store.catalog import Catalog
from store.layout import StoreError
from store.verify import validated_manifest

BUNDLE = "assets/vega.js"
IMAGES = "images"
SECTIONS = {"overview": "Overview", "matrix": "Evaluation matrix", "similarity": "Similarity map",
            "predictors": "Robustness predictors", "report": "Paper table", "gallery": "Fragile samples"}
BUDGET_BYTES = 20_000_000  # the size the export is meant to stay under (the demo's); above it, a warning
CORRECTION = "holm"
# JSON placed inside <script>: these three never appear literally, so no text closes the element.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


@dataclass(frozen=True)
class Exported:
    """What an export wrote: its folder, total bytes, file count, gallery images and seconds taken."""

    out: Path
    bytes: int
    files: int
    images: int
    seconds: float


def _script_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=str).translate(_SCRIPT_SAFE)


def _spec(figure: alt.TopLevelMixin) -> dict:
    """The chart as a Vega-Lite spec with its data inline (every row: the export has no server to ask)."""
    with alt.data_transformers.enable("default", max_rows=None):
        return figure.to_dict()


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.4g}"
    return escape.html(value)


def _table(frame: pl.DataFrame, row_ids: Sequence[str] | None = None) -> str:
    """An HTML table of `frame`, every header and cell escaped; `row_ids` gives each row an anchor."""
    head = "".join(f"<th>{escape.html(name)}</th>" for name in frame.columns)
    rows = []
    for index, row in enumerate(frame.iter_rows()):
        anchor = f' id="{escape.html(row_ids[index])}"' if row_ids else ""
        rows.append(f"<tr{anchor}>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


class _Page:
    """index.html as it is assembled: sections of escaped HTML and the chart specs they draw."""

    def __init__(self) -> None:
        self.sections: dict[str, list[str]] = {key: [] for key in SECTIONS}
        self.specs: dict[str, dict] = {}

    def add(self, section: str, html: str) -> None:
        self.sections[section].append(html)

    def chart(self, section: str, name: str, figure: alt.TopLevelMixin) -> None:
        self.specs[name] = _spec(figure)
        self.add(section, f'<div class="chart" id="{name}"></div>')

    def render(self, title: str, anchors: dict) -> str:
        menu = "".join(f'<a href="#{key}">{label}</a>' for key, label in SECTIONS.items())
        body = "".join(f'<section id="{key}" data-section="{key}"><h2>{SECTIONS[key]}</h2>{"".join(parts)}</section>'
                       for key, parts in self.sections.items())
        return _TEMPLATE.format(title=escape.html(title), menu=menu, body=body, bundle=BUNDLE,
                                specs=_script_json(self.specs), anchors=_script_json(anchors))


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 2em 4em; color: #222; }}
nav {{ position: sticky; top: 0; background: #fff; padding: .6em 0; border-bottom: 1px solid #ddd; z-index: 1; }}
nav a {{ margin-right: 1.2em; }}
table {{ border-collapse: collapse; font-size: 13px; margin: .5em 0 1em; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
tr:target {{ background: #fff3b0; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; border: 1px solid #ddd; padding: 6px; font-size: 12px; width: 170px; }}
figure img {{ width: 76px; image-rendering: pixelated; }}
.note {{ color: #555; font-size: 13px; }}
</style></head>
<body><h1>{title}</h1><nav>{menu}</nav>{body}
<script src="{bundle}"></script>
<script type="application/json" id="specs">{specs}</script>
<script type="application/json" id="anchors">{anchors}</script>
<script>
const specs = JSON.parse(document.getElementById("specs").textContent);
const anchors = JSON.parse(document.getElementById("anchors").textContent);
for (const [name, spec] of Object.entries(specs)) {{
  vegaEmbed("#" + name, spec, {{actions: false}}).then(result => {{
    result.view.addEventListener("click", (event, item) => {{
      const datum = item && item.datum;
      if (!datum) return;
      const anchor = (map, key) => (Object.hasOwn(map, key) ? map[key] : null);  // store text is only a key
      const target = anchor(anchors.corruptions, datum.corruption) || anchor(anchors.models, datum.model_id);
      if (target) location.hash = target;
    }});
  }}).catch(error => {{ document.getElementById(name).textContent = "This chart could not be drawn: " + error; }});
}}
</script></body></html>
"""


def _overview(page: _Page, catalog: Catalog, models: pl.DataFrame, model_rows: dict[str, str]) -> None:
    manifest = catalog.manifest
    summary = matrices.model_summary(catalog)
    page.add("overview", f'<p>Dataset <b>{escape.html(manifest["dataset"])}</b> · {models.height} models · '
             f'{manifest["num_samples"]} test samples · {manifest["num_classes"]} classes · '
             f'{len(manifest["corruptions"])} corruptions at severities '
             f'{", ".join(map(str, manifest["severities"]))}</p>')
    page.chart("overview", "chart-accuracy", accuracy_vs_sparsity(summary))
    page.chart("overview", "chart-lineage", lineage_tree(models))
    page.add("overview", '<p class="note">Each model right of its base (the model it was derived from). Click a '
             'model in a chart to open its row below.</p>')
    table = models.select("model_id", "arch", "method", "target_sparsity", "sparsity", "seed", "base").join(
        summary.select("model_id", "clean_accuracy", "corruption_accuracy", "relative_mce"), on="model_id",
        how="left", maintain_order="left")
    page.add("overview", _table(table, [model_rows[m] for m in table["model_id"].to_list()]))


def _matrix(page: _Page, catalog: Catalog) -> None:
    cells = uncertainty.matrix_cells(catalog, "model")
    if cells.is_empty():
        page.add("matrix", '<p class="note">No predictions in this store yet.</p>')
        return
    cells = uncertainty.with_significance(cells, CORRECTION)
    manifest = catalog.manifest
    figure = interval_matrix(cells, "accuracy", "accuracy", setting_order(manifest["corruptions"],
                             manifest["severities"]), uncertainty.CORRECTIONS[CORRECTION], domain=(0, 1))
    page.chart("matrix", "chart-matrix", by_method(figure) if cells["model_id"].n_unique() > MATRIX_ROWS else figure)
    page.add("matrix", '<p class="note">Accuracy of every model under every corruption and severity. Hover a cell '
             'for its 95 % interval and the paired test of its drop against the reference; faded cells with a '
             f'dashed outline are not significant at 0.05 ({uncertainty.CORRECTIONS[CORRECTION]}). Click a cell to '
             'open the fragile samples of its corruption.</p>')


def _similarity(page: _Page, catalog: Catalog) -> None:
    embedding = embeddings.model_embedding(catalog)
    if embedding.is_empty():
        page.add("similarity", '<p class="note">No model embedding in this store: compute it with '
                 '<code>python -m compute embed --store DIR</code> and export again.</p>')
        return
    page.chart("similarity", "chart-similarity", model_map(embedding, embeddings.model_tree(catalog)))
    page.add("similarity", '<p class="note">Each model placed by its per-sample geometry (UMAP of angle, feature '
             'norm and margin) with the minimum spanning tree: close models treat the test samples alike.</p>')


def _predictors(page: _Page, catalog: Catalog) -> None:
    points = predictors.model_geometry(catalog, layout.CLEAN, 0)
    if points.height < 3:
        page.add("predictors", '<p class="note">A rank correlation across models needs at least 3 models.</p>')
        return
    statistic, target = next(iter(predictors.STATISTICS)), next(iter(predictors.TARGETS))
    title = predictors.TARGETS[target][0]
    page.chart("predictors", "chart-predictors", predictor_scatter(
        points, statistic, target, f"{predictors.STATISTICS[statistic]} (clean images)", title,
        f"{predictors.STATISTICS[statistic]} vs {title}"))
    table = predictors.correlations(points, target, CORRECTION)
    shown = [c for c in ("statistic", "models", "rho", "low", "high", "p_adjusted", "partial_rho", "verdict")
             if c in table.columns]
    page.add("predictors", f'<p class="note">Every statistic on clean images against {escape.html(title)}: '
             "Spearman's rho with its bootstrap 95 % interval and Holm-adjusted p-value.</p>" + _table(table.select(shown)))


def _report(page: _Page, catalog: Catalog) -> None:
    table = report.report_table(catalog, "group")
    if table.is_empty():
        page.add("report", '<p class="note">No predictions in this store yet.</p>')
        return
    page.add("report", _table(report.report_wide(report.select_columns(table, "full"))))
    notes = "".join(f"<li>{escape.html(note)}</li>" for note in report.report_notes(catalog))
    page.add("report", '<p class="note">One row per (architecture, method, target sparsity): mean [95 % '
             f'interval] over seeds (one seed: the Wilson interval over the test samples).</p><ul class="note">{notes}</ul>')


def _gallery(page: _Page, catalog: Catalog, out: Path, per_corruption: int,
             corruption_anchors: dict[str, str]) -> int:
    """The gallery sections and their PNG files; returns the number of images written."""
    fragile = presets.most_fragile(catalog, per_corruption)
    page.add("gallery", f'<p class="note">Per corruption, the {per_corruption} samples it breaks most often: of '
             "the models right on the clean image, how many (model, severity) predictions are wrong. The images are "
             "exactly the pixels the models saw: clean, and at the mildest severity that breaks one.</p>")
    (out / IMAGES).mkdir()
    written = 0
    for corruption in catalog.manifest["corruptions"]:
        rows = fragile.filter(pl.col("corruption") == corruption)
        cards = []
        for row in rows.iter_rows(named=True):
            pictures = []
            for name, severity in ((layout.CLEAN, 0), (corruption, row["first_wrong_severity"])):
                setting = "clean" if name == layout.CLEAN else f"{corruption_anchors[corruption]}-{severity}"
                file = f"{IMAGES}/s{row['sample_id']}-{setting}.png"
                if not (out / file).exists():  # a clean image is written once, whichever corruptions break it
                    try:
                        image = pixels.image(catalog.root, row["sample_id"], name, severity)
                    except StoreError as error:
                        pictures.append(f'<span class="note">{escape.html(error)}</span>')
                        continue
                    (out / file).write_bytes(pixels.png(image))
                    written += 1
                pictures.append(f'<img src="{file}" alt="sample {row["sample_id"]}, {escape.html(name)} '
                                f'severity {severity}">')
            margin = "–" if row["worst_margin"] is None else f"{row['worst_margin']:.3f}"
            cards.append(f"<figure>{''.join(pictures)}<figcaption>clean · {escape.html(corruption)} severity "
                         f"{row['first_wrong_severity']}<br>sample {row['sample_id']} · "
                         f"{escape.html(row['label_name'])}<br>wrong in {row['wrong']} of {row['checked']} "
                         f"predictions<br>worst margin {margin}</figcaption></figure>")
        content = ''.join(cards) or '<p class="note">No sample right on clean images breaks under it.</p>'
        page.add("gallery", f'<h3 id="{corruption_anchors[corruption]}">{escape.html(corruption)}</h3>'
                 f'<div class="gallery">{content}</div><p><a href="#matrix">back to the matrix</a></p>')
    return written


def export(store: str | Path, out: str | Path, per_corruption: int = 12) -> Exported:
    """Write the static export of `store` into the folder `out` (replacing an earlier export there; any other
    non-empty folder is refused). Built beside `out` and renamed into place, so a failed export leaves
    nothing half-written."""
    started = time.monotonic()
    store, out = Path(store), Path(out)
    if not store.is_dir():
        raise StoreError(f"no store directory at {store}")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / BUNDLE).is_file())):
        raise ValueError(f"{out} exists and is not an earlier export: choose a new --out folder")
    catalog = Catalog(store, manifest=validated_manifest(store, images=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    building.chmod(0o755)  # mkdtemp's folder is private; a site is meant to be shared
    try:
        models = queries.models(catalog)
        model_rows = {m: f"model-{i}" for i, m in enumerate(models["model_id"].to_list())}
        corruption_anchors = {c: f"gallery-{i}" for i, c in enumerate(catalog.manifest["corruptions"])}
        page = _Page()
        _overview(page, catalog, models, model_rows)
        _matrix(page, catalog)
        _similarity(page, catalog)
        _predictors(page, catalog)
        _report(page, catalog)
        images = _gallery(page, catalog, building, per_corruption, corruption_anchors)
        (building / "assets").mkdir()
        # Vega, Vega-Lite and vega-embed in one script with no outside reference
        (building / BUNDLE).write_text(vl_convert.javascript_bundle(), encoding="utf-8")
        title = f"prunescope: {catalog.manifest['dataset']} study"
        (building / "index.html").write_text(
            page.render(title, {"models": model_rows, "corruptions": corruption_anchors}), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        building.rename(out)
    finally:
        catalog.close()
        shutil.rmtree(building, ignore_errors=True)
    files = [p for p in out.rglob("*") if p.is_file()]
    return Exported(out, sum(p.stat().st_size for p in files), len(files), images, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    """The `compute export` command line (its arguments are compute.commands.export's)."""
    parser = argparse.ArgumentParser(prog="python -m compute export", description=command.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        done = export(args.store, args.out, args.fragile)
    except OSError as error:
        print(f"error: {describe_os_error(error, args.out)}", file=sys.stderr)
        return 2
    except ValueError as error:  # StoreError and the catalog's QueryError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    over = f" (over the {BUDGET_BYTES / 1e6:.0f} MB meant for a study: lower --fragile)" \
        if done.bytes > BUDGET_BYTES else ""
    print(f"exported {args.store} to {done.out / 'index.html'}: {done.bytes / 1e6:.2f} MB in {done.files} "
          f"files ({done.images} images){over}, {done.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
