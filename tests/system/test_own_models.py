"""The researcher's own models end to end: a timm ResNet-10t and its magnitude-pruned copy
(`torch.nn.utils.prune.global_unstructured`, as the issue's user did) extracted on digits, described once by
extract flags and once by a models file; the model cards, groups, references, report, attribution and
every dashboard page on those stores, and on a store of one model with no reference.

One module-scoped set of stores, tiny settings: 40 test images, one corruption at one severity.
"""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from torch.nn.utils import prune

from analysis import matrices, queries, report, sql, uncertainty
from compute import attribution, footprint, loading, runs
from compute.cards import CHECKPOINT_LOADER, ExtractModel, fill_bases
from dashboard.charts.overview import lineage_tree, tree_layout
from dashboard.pages import PAGES
from store import layout
from store.catalog import Catalog
from testkit.app import open_app
from testkit.datasets import write_cifar10

timm = pytest.importorskip("timm")

MODULE = "own_timm_nets"
LIMIT = ["--limit", "40", "--corruptions", "contrast", "--severities", "1", "--device", "cpu", "--batch-size", "40"]
SPARSITY = 0.7
MODELS_FILE = """
[r10t-dense]
model = "own_timm_nets:resnet10t"
weights = "{dense}"
normalize = "cifar10"
method = "dense"
seed = 0

[r10t-mag70]
model = "own_timm_nets:resnet10t"
weights = "{pruned}"
normalize = "cifar10"
method = "magnitude"
sparsity = 0.7
seed = 0
base = "r10t-dense"

[r10t-mag90]
model = "own_timm_nets:resnet10t"
weights = "{pruned90}"
normalize = "cifar10"
method = "magnitude"
sparsity = 0.9
seed = 0
base = "r10t-mag70"
"""


def flags(store: Path, weights: Path, *card: str) -> list[str]:
    return ["extract", "--store", str(store), "--model", f"{MODULE}:resnet10t", "--weights", str(weights),
            "--normalize", "cifar10", *card, *LIMIT]


@pytest.fixture(scope="module")
def own(tmp_path_factory, cli, latency_not_timed):
    """The user's module and weights (allowed as the operator would: PRUNESCOPE_ALLOW_ROOTS), and three stores:
    `flags` and `file` (dense + pruned, described either way) and `solo` (the dense model alone, no base).
    Only solo's model is timed (latency); the other cards get latency_not_timed's figure, which no test reads."""
    root = tmp_path_factory.mktemp("own")
    (root / f"{MODULE}.py").write_text(textwrap.dedent("""
        import timm

        def resnet10t():
            return timm.create_model("resnet10t", num_classes=10, pretrained=False)
    """))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        patch.setenv("PRUNESCOPE_ALLOW_ROOTS", str(root))
        torch.manual_seed(0)
        dense = timm.create_model("resnet10t", num_classes=10, pretrained=False)
        torch.save({"state_dict": dense.state_dict()}, root / "dense.pt")  # nested, as training scripts save
        parameters = [(m, "weight") for m in dense.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
        prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=SPARSITY)
        for module, name in parameters:
            prune.remove(module, name)
        torch.save(dense.state_dict(), root / "mag70.pt")
        # pruned again, from the 70 % copy: a lineage of three generations
        prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=0.9)  # of every weight
        for module, name in parameters:
            prune.remove(module, name)
        torch.save(dense.state_dict(), root / "mag90.pt")
        stores = {name: root / name for name in ("flags", "file", "solo")}
        steps = [
            flags(stores["flags"], root / "dense.pt", "--method", "dense", "--model-seed", "0", "--model-id",
                  "r10t-dense"),
            flags(stores["flags"], root / "mag70.pt", "--method", "magnitude", "--sparsity", "0.7", "--model-seed",
                  "0", "--base", "r10t-dense", "--model-id", "r10t-mag70"),
            flags(stores["flags"], root / "mag90.pt", "--method", "magnitude", "--sparsity", "0.9", "--model-seed",
                  "0", "--base", "r10t-mag70", "--model-id", "r10t-mag90"),
            flags(stores["solo"], root / "dense.pt", "--model-id", "solo"),
        ]
        (root / "models.toml").write_text(MODELS_FILE.format(dense=root / "dense.pt", pruned=root / "mag70.pt",
                                                             pruned90=root / "mag90.pt"))
        steps.append(["extract", "--store", str(stores["file"]), "--models", str(root / "models.toml"), *LIMIT])
        steps.append(["embed", "--store", str(stores["flags"]), "--projection", "pca"])  # the two embedding pages
        for step in steps:
            with pytest.MonkeyPatch.context() as timing:  # timing a ResNet was half of this set-up
                if step[2] != str(stores["solo"]):
                    timing.setattr(footprint, "latency", latency_not_timed)
                ran = cli(*step)
            assert ran.returncode == 0, ran.stderr
        yield root, stores
    sys.modules.pop(MODULE, None)


def cards(store: Path) -> pl.DataFrame:
    return queries.models(Catalog(store)).sort("model_id")


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_flags_and_a_models_file_give_the_same_model_cards(own) -> None:
    _, stores = own
    by_flags, by_file = cards(stores["flags"]), cards(stores["file"])
    columns = ["model_id", "arch", "method", "target_sparsity", "seed", "base", "reference_model_id", "loader"]
    assert by_flags.select(columns).to_dicts() == by_file.select(columns).to_dicts()
    dense, pruned = by_flags.row(0, named=True), by_flags.row(1, named=True)
    assert (dense["arch"], dense["method"], dense["base"], dense["seed"]) == ("resnet10t", "dense", None, 0)
    assert (pruned["method"], pruned["target_sparsity"], pruned["base"]) == ("magnitude", 0.7, "r10t-dense")
    assert json.loads(pruned["loader"]) == {"kind": "module", "function": f"{MODULE}:resnet10t",
                                            "normalize": "cifar10"}


def test_a_users_model_is_timed_on_cpu_like_any_other(own) -> None:
    _, stores = own
    (card,) = cards(stores["solo"]).iter_rows(named=True)
    assert card["latency_ms_batch1"] > 0 and card["latency_ms_batch256"] > 0
    assert card["latency_threads"] == footprint.THREADS


def test_the_pruned_copy_sits_at_its_measured_sparsity_and_is_no_group_with_its_base(own) -> None:
    _, stores = own
    frame = Catalog(stores["flags"]).query("SELECT model_id, sparsity, group_id FROM models ORDER BY model_id", name="test")
    assert frame["sparsity"][0] < 0.01
    # global_unstructured over every conv and linear weight: 70 % of those zeroed (BN and biases are not pruned)
    assert frame["sparsity"][1] == pytest.approx(SPARSITY, abs=0.01)
    assert frame["sparsity"][2] == pytest.approx(0.9, abs=0.01)
    assert frame["group_id"].n_unique() == 3


def test_report_pairs_the_pruned_model_with_its_base(own, cli) -> None:
    _, stores = own
    ran = cli("report", "--store", stores["flags"], "--by", "model", "--format", "csv")
    assert ran.returncode == 0, ran.stderr
    table = pl.read_csv(io.StringIO(ran.stdout))
    assert sorted(table["row"].unique().to_list()) == ["r10t-dense", "r10t-mag70", "r10t-mag90"]  # not one group
    catalog = Catalog(stores["flags"])
    # untrained networks: the corruption may not raise the error, so the relative mCE (a ratio of rises) can be
    # undefined; the pairing shows in the paired cells and the corruption error (a ratio of errors)
    cells = uncertainty.model_cells(catalog)
    pairs = dict(cells.select("model_id", "reference_model_id").unique().iter_rows())
    assert pairs == {"r10t-dense": None, "r10t-mag70": "r10t-dense", "r10t-mag90": "r10t-mag70"}
    assert cells.filter(pl.col("model_id") == "r10t-mag70")["drop_vs_reference"].null_count() == 0
    errors = matrices.corruption_errors(catalog)
    ce = dict(errors.select("model_id", "ce").iter_rows())
    assert ce["r10t-dense"] is None and ce["r10t-mag70"] is not None
    assert report.report_table(catalog, "model")["row"].unique().len() == 3


def test_attribution_loads_both_models_from_their_cards(own) -> None:
    root, stores = own
    store = stores["flags"]
    image = np.load(store / layout.CLEAN_IMAGES)[0]
    label = int(pq.read_table(store / layout.SAMPLES).column("label")[0].as_py())
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        patch.setenv("PRUNESCOPE_ALLOW_ROOTS", str(root))
        for row in cards(store).iter_rows(named=True):
            assert loading.missing_checkpoint(store, row["checkpoint"], row["loader"]) is None
            maps = attribution.occlusion_maps(str(store), row["checkpoint"], image, label, loader=row["loader"])
            assert np.isfinite(maps["angle_true"]).any(), row["model_id"]
        patch.delenv("PRUNESCOPE_ALLOW_ROOTS")  # the operator has not allowed the user's directory
        row = cards(store).row(0, named=True)
        assert "outside the store" in loading.missing_checkpoint(store, row["checkpoint"], row["loader"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flags", "solo"])
def test_every_page_renders_with_content(own, name, monkeypatch) -> None:
    _, stores = own
    app = open_app(monkeypatch, stores[name])
    for page in PAGES.values():
        app.switch_page(page.script).run()
        assert not app.exception, (name, page.url_path, app.exception)
        assert not app.error, (name, page.url_path, [e.value for e in app.error])
        drawn = len(app.get("vega_lite_chart")) + len(app.dataframe) + len(app.get("imgs"))
        notes = [info.value for info in app.info]
        if name == "flags":  # dense and pruned with embeddings: every page draws something
            assert drawn, (page.url_path, notes)
            assert not any("--base MODEL_ID" in note for note in notes), page.url_path
        else:
            assert drawn or notes, page.url_path
    if name == "solo":  # a comparison says what is missing and how the operator adds it
        app.switch_page(PAGES["matrix"].script).run()
        assert any("--base MODEL_ID" in info.value for info in app.info)


def test_a_store_without_a_reference_names_what_is_missing(own) -> None:
    _, stores = own
    with pytest.raises(sql.NoReference, match="--base MODEL_ID"):
        sql.reference_model(Catalog(stores["solo"]))
    assert cards(stores["solo"])["seed"].to_list() == [None]  # no --model-seed: no replicate group


def test_models_file_errors_name_the_table_and_key_before_anything_is_written(own, cli, tmp_path) -> None:
    root, _ = own
    good = MODELS_FILE.format(dense=root / "dense.pt", pruned=root / "mag70.pt", pruned90=root / "mag90.pt")
    cases = {
        "unknown key": (good.replace("seed = 0\n", "sede = 0\n", 1), "table [r10t-dense]: unknown key 'sede'"),
        "duplicate id": (good + good.split("\n\n")[0].replace("[r10t-dense]", "\n[r10t-dense]", 1),
                         "table [r10t-dense] appears twice"),
        "missing base": (good.replace('base = "r10t-dense"', 'base = "r10t-gone"'),
                         "table [r10t-mag70]: key 'base': no model 'r10t-gone'"),
        "cycle": (good.replace('seed = 0\n\n', 'seed = 0\nbase = "r10t-mag70"\n\n', 1),
                  "key 'base': the bases form a cycle"),
        "bad sparsity": (good.replace("sparsity = 0.7", "sparsity = 70"), "table [r10t-mag70]: key 'sparsity'"),
    }
    for case, (text, message) in cases.items():
        path = tmp_path / f"{case.replace(' ', '-')}.toml"
        path.write_text(text)
        store = tmp_path / f"store-{case.replace(' ', '-')}"
        ran = cli("extract", "--store", store, "--models", path, *LIMIT)
        assert ran.returncode == 2, case
        lines = ran.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (case, ran.stderr)
        assert not store.exists(), case  # refused before the first write


def test_flag_errors_lead_somewhere(own, cli, tmp_path) -> None:
    root, _ = own
    store = tmp_path / "store"
    ran = cli("extract", "--store", store, "--model", "no_such_nets:net", *LIMIT)
    assert ran.returncode == 2 and "working directory" in ran.stderr and "PYTHONPATH" in ran.stderr
    ran = cli("extract", "--store", store, "--checkpoints", root / "mag70.pt", *LIMIT)
    assert ran.returncode == 2 and "--model" in ran.stderr and "--weights" in ran.stderr
    ran = cli("extract", "--store", store, "--method", "magnitude", "--checkpoints", root / "mag70.pt", *LIMIT)
    assert ran.returncode == 2 and "--method describes --model or --robustbench" in ran.stderr
    assert not store.exists()


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_robustbench_by_name_through_a_local_stand_in(cli, tmp_path, monkeypatch) -> None:
    """RobustBench's loader (robustbench.utils.load_model(model_name=, model_dir=, dataset=, threat_model=), as
    robustbench 1.1 names its arguments) replaced by a stand-in returning a small network; no network access.
    By flag and by a models file's `robustbench` key, on a CIFAR-10 test set in the published layout."""
    calls = []

    def load_model(**kwargs):
        calls.append(kwargs)
        torch.manual_seed(0)
        return timm.create_model("resnet10t", num_classes=10, pretrained=False)

    package, utils = types.ModuleType("robustbench"), types.ModuleType("robustbench.utils")
    utils.load_model, package.utils = load_model, utils
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    monkeypatch.chdir(tmp_path)
    write_cifar10(tmp_path / "data", n_test=12)
    data = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]
    ran = cli("extract", "--store", tmp_path / "by-flag", *data, "--robustbench", "Diffenderfer2021Winning_LRR",
              "--method", "lrr", "--sparsity", "0.95", *LIMIT)
    assert ran.returncode == 0, ran.stderr
    (tmp_path / "rb.toml").write_text('[lrr-card]\nrobustbench = "Diffenderfer2021Winning_LRR_CARD_Deck"\n'
                                      'threat_model = "corruptions"\nmethod = "lrr"\nsparsity = 0.95\n')
    ran = cli("extract", "--store", tmp_path / "by-file", *data, "--models", tmp_path / "rb.toml", *LIMIT)
    assert ran.returncode == 0, ran.stderr
    model_dir = str(tmp_path / "models")  # RobustBench's default download directory, under the working directory
    assert calls == [{"model_name": name, "model_dir": model_dir, "dataset": "cifar10", "threat_model": "corruptions"}
                     for name in ("Diffenderfer2021Winning_LRR", "Diffenderfer2021Winning_LRR_CARD_Deck")]
    for store, model_id in ((tmp_path / "by-flag", "Diffenderfer2021Winning_LRR"), (tmp_path / "by-file", "lrr-card")):
        row = cards(store).row(0, named=True)
        assert (row["model_id"], row["method"], row["target_sparsity"]) == (model_id, "lrr", 0.95)
        assert json.loads(row["loader"]) == {"kind": "robustbench", "name": calls[model_id == "lrr-card"]["model_name"],
                                             "dataset": "cifar10", "threat_model": "corruptions",
                                             "model_dir": model_dir}


def test_robustbench_without_the_package_says_how_to_install_it(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "robustbench", None)
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    write_cifar10(tmp_path / "data", n_test=12)
    ran = cli("extract", "--store", tmp_path / "rb", "--dataset", "cifar10", "--data-dir", tmp_path / "data",
              "--robustbench", "Standard", *LIMIT)
    assert ran.returncode == 2 and "pip install robustbench==1.1.1" in ran.stderr


def test_embed_without_a_reference_says_which_models_it_embeds(own, cli, pristine_copy) -> None:
    _, stores = own
    store = pristine_copy(stores["solo"])
    ran = cli("embed", "--store", store, "--projection", "pca")
    assert ran.returncode == 0, ran.stderr
    assert "samples of solo (choose others with --sample-models" in ran.stdout + ran.stderr
    ran = cli("embed", "--store", store, "--projection", "pca", "--sample-models", "nope")
    assert ran.returncode == 2 and "unknown model id(s) ['nope']" in ran.stderr


def test_report_takes_a_chosen_reference(own, cli) -> None:
    _, stores = own
    ran = cli("report", "--store", stores["flags"], "--reference", "nope")
    assert ran.returncode == 2 and "reference model 'nope' is not in the store" in ran.stderr
    cells = uncertainty.model_cells(Catalog(stores["flags"], reference="r10t-mag90"))
    assert dict(cells.select("model_id", "reference_model_id").unique().iter_rows()) == {
        "r10t-dense": "r10t-mag90", "r10t-mag70": "r10t-mag90", "r10t-mag90": None}


def test_the_lineage_tree_puts_each_model_right_of_its_base(own) -> None:
    _, stores = own
    nodes, edges = tree_layout(queries.models(Catalog(stores["flags"])))
    depth = dict(nodes.select("model_id", "depth").iter_rows())
    assert depth == {"r10t-dense": 0, "r10t-mag70": 1, "r10t-mag90": 2}
    assert edges.select("base", "model_id", "label").rows() == [
        ("r10t-dense", "r10t-mag70", "magnitude 70%"), ("r10t-mag70", "r10t-mag90", "magnitude 90%")]
    spec = lineage_tree(queries.models(Catalog(stores["flags"]))).to_dict()
    # a click selects by model_id: dashboard.linking copies that field into the sidebar's model
    assert [(p["name"], p["select"]) for p in spec["params"]] == [("lineage", {"type": "point", "fields": ["model_id"]})]


def test_pruned_checkpoints_get_their_dense_model_as_base() -> None:
    """compute.cards.fill_bases: a record's base digest names the dense run (here or in the store); a
    checkpoint without a record falls back to the dense model of its arch; user models keep their card."""
    dense_run = runs.dense_run("small_cnn", "digits", 0, {}, rewind_step=0)
    stored_run = runs.dense_run("small_cnn", "digits", 1, {}, rewind_step=0)

    def entry(model_id, method, run=None, loader=CHECKPOINT_LOADER, base=None, seed=0):
        info = {"method": method, "arch": "small_cnn", "seed": seed, "base": base,
                "loader": json.dumps(loader, sort_keys=True)}
        return ExtractModel(model_id, torch.nn.Identity(), info, run)

    entries = [entry("dense", "dense", dense_run),
               entry("lrr", "lrr", runs.pruned_run("small_cnn", "digits", "lrr", 0.9, 0, {}, {}, dense_run.digest, 0)),
               entry("old-seed1", "lrr", runs.pruned_run("small_cnn", "digits", "lrr", 0.9, 1, {}, {},
                                                          stored_run.digest, 0), seed=1),
               entry("no-record", "gmp", seed=1),
               entry("mine", "magnitude", loader={"kind": "module"})]
    fill_bases(entries, {"dense-s1": stored_run.digest})
    assert {e.model_id: e.info["base"] for e in entries} == {
        "dense": None, "lrr": "dense", "old-seed1": "dense-s1", "no-record": "dense", "mine": None}


@pytest.mark.browser
def test_in_chromium_every_page_renders_and_a_lineage_click_selects_the_model(own) -> None:
    """The store of flags served as an operator would (the user's module importable, its directory allowed)."""
    from playwright.sync_api import expect

    from testkit.browser import CONTENT, VIEWPORT, chromium, dashboard, navigate, visit

    root, stores = own
    env = {**os.environ, "PYTHONPATH": str(root), "PRUNESCOPE_ALLOW_ROOTS": str(root)}
    with dashboard(stores["flags"], env=env) as url, chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        for path in PAGES:
            visit(page, url, path)
            page.get_by_test_id("stMain").locator(CONTENT).first.wait_for(timeout=30_000)
        visit(page, url, "overview")
        lineage_chart = page.locator(".vega-embed").nth(1)  # after accuracy vs sparsity
        lineage_chart.locator('path[aria-label*="model_id: r10t-mag90;"]').first.click()
        navigate(page, "local")
        expect(page.get_by_test_id("stMain")).to_contain_text("Model r10t-mag90 on", timeout=60_000)


def test_attribution_runs_no_module_code_outside_the_allowed_roots(tmp_path, monkeypatch) -> None:
    """A loader naming a package outside the allowed roots is refused before the package is imported."""
    package = tmp_path / "outside" / "sneaky"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    (package / "nets.py").write_text("def net():\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path / "outside"))
    monkeypatch.setenv("PRUNESCOPE_ALLOW_ROOTS", str(tmp_path / "allowed"))
    store = tmp_path / "store"
    store.mkdir()
    for function in ("sneaky.nets:net", "os:getcwd", "json:loads"):  # a package, a frozen and a plain module
        loader = json.dumps({"kind": "module", "function": function, "normalize": None})
        assert "Attribution refused" in loading.missing_checkpoint(store, None, loader), function
    assert not (tmp_path / "ran").exists() and "sneaky" not in sys.modules
