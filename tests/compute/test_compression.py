"""Compression beyond masks: channel pruning (smaller networks that load without unpickling), N:M
sparsity (the pattern holds in every group), int8 quantization (agrees with its float base; its stored
geometry is that of its dequantized features), chains (channel -> int8 records both bases), and the size
and latency measurements."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from analysis import queries
from compute import checkpoint, datasets, footprint, models, quantize, runs
from compute.datasets.base import Dataset, ImageSet
from compute.identity import derived_id
from compute.models.base import check_contract, prunable_weights
from compute.models.structure import narrow
from compute.pruning import channel, nm
from compute.runners import quantize_model, quantize_record, save, train_pruned
from compute.study import run as run_study
from compute.study_file import DerivedPlan, MethodPlan, Study, StudyError
from compute.train import TrainConfig, accuracy, predict, train
from dashboard.charts.overview import COSTS, has_costs, robustness_vs_cost, tree_layout
from dashboard.pages import PAGES
from store.catalog import Catalog
from testkit import extraction

CPU = torch.device("cpu")
TWO_STEPS = TrainConfig(epochs=1, batch_size=32, lr=0.01, seed=0)  # a handful of batches of fine-tuning




@pytest.fixture(scope="module")
def few(digits) -> ImageSet:
    """64 training images: two optimiser steps of TWO_STEPS."""
    return ImageSet(digits.train.images[:64], digits.train.labels[:64])




def saved_dense(model: nn.Module, epochs: int, digits: Dataset, stats, directory: Path) -> Path:
    """`model` trained for `epochs` on digits, saved with its dense run record as a study saves it."""
    record = runs.dense_run("small_cnn", "digits", 0, {"epochs": epochs}, rewind_step=0)
    if epochs:
        train(model, digits.train, record.config, CPU)
    path = directory / "small_cnn-dense-s0.pt"
    save(path, model, "small_cnn-dense-s0", record, digits, stats, {})
    return path


@pytest.fixture(scope="module")
def untrained(digits, stats, tmp_path_factory) -> Path:
    """A freshly initialised small CNN saved as a dense checkpoint: the mechanics need no training."""
    return saved_dense(fresh("small_cnn", digits, stats), 0, digits, stats, tmp_path_factory.mktemp("untrained"))


@pytest.fixture(scope="module")
def dense(digits, stats, tmp_path_factory) -> Path:
    """A small CNN trained on digits for 5 epochs (above 90 % test accuracy): for the slow agreement tests."""
    return saved_dense(fresh("small_cnn", digits, stats), 5, digits, stats, tmp_path_factory.mktemp("dense"))


def fresh(arch: str, digits: Dataset, stats) -> nn.Module:
    torch.manual_seed(0)
    return models.build(arch, digits.num_classes, *stats)


def weights_only_payload(path: Path) -> dict:
    """The checkpoint as torch.load(weights_only=True) reads it: tensors and plain values, no code."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in payload["state_dict"].values())
    return payload


# -- channel pruning ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["small_cnn", pytest.param("resnet18", marks=pytest.mark.slow)])  # 4-13 s
def test_channel_pruning_shrinks_the_network_and_it_loads_from_a_spec_and_tensors(arch, digits, few, stats,
                                                                                  tmp_path) -> None:
    full = fresh(arch, digits, stats)
    pruned = channel.prune(copy.deepcopy(full), few, 0.5, TWO_STEPS, CPU)

    assert footprint.parameters(pruned)[0] < 0.5 * footprint.parameters(full)[0]
    check_contract(pruned)
    assert pruned.classifier.out_features == digits.num_classes
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(pruned(x), pruned.classifier(pruned.forward_features(x)))

    path = tmp_path / f"{arch}-channel.pt"
    checkpoint.save(path, pruned, arch=arch, num_classes=digits.num_classes, mean=stats[0], std=stats[1],
                    dataset="digits", hparams={})
    payload = weights_only_payload(path)
    assert payload["structure"], "the narrowed layers' widths are recorded"
    loaded, meta = checkpoint.load(path)
    check_contract(loaded)
    torch.testing.assert_close(loaded(x), pruned.eval()(x))
    assert meta["structure"] == payload["structure"]


def test_channel_pruning_removes_the_channels_of_smallest_l1_over_their_dependency_group(digits, stats) -> None:
    # Torch-Pruning's group L1 (DepGraph, Fang et al. 2023; torch_pruning GroupMagnitudeImportance, mean
    # over the group): a channel's importance is the mean of its filter's L1 norm, its batch-norm |gamma|
    # and the L1 norm of the next layer's weights it feeds. small_cnn has no residual sums, so each
    # convolution is its own group; ranked layer by layer and not fine-tuned, the survivors are exactly
    # the top 3/4 by that score, in their order, and the next layer keeps only their inputs.
    model = fresh("small_cnn", digits, stats)
    for m in model.modules():  # trained-looking batch norms: |gamma| differs between channels
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.body if isinstance(m, nn.BatchNorm2d)]
    consumers = [*convs[1:], model.classifier]
    before = [conv.weight.detach().double().clone() for conv in convs]
    scores = [(conv.weight.double().abs().sum(dim=(1, 2, 3)) + bn.weight.double().abs()
               + nxt.weight.double().abs().transpose(0, 1).flatten(1).sum(dim=1)) / 3
              for conv, bn, nxt in zip(convs, norms, consumers, strict=True)]
    channel.remove_channels(model, torch.rand(2, 3, 32, 32), 0.25, layerwise=True)
    kept_inputs = list(range(3))
    convs_after = [m for m in model.body if isinstance(m, nn.Conv2d)]
    for old, score, new in zip(before, scores, convs_after, strict=True):
        kept = sorted(torch.argsort(score, descending=True)[:len(score) - len(score) // 4].tolist())
        torch.testing.assert_close(new.weight.double(), old[kept][:, kept_inputs])
        kept_inputs = kept
    assert model.classifier.in_features == len(kept_inputs)


def test_residual_channels_stay_consistent_in_resnet18(digits, stats) -> None:
    model = fresh("resnet18", digits, stats)
    channel.remove_channels(model, torch.rand(2, 3, 32, 32), 0.5)
    for block in (m for m in model.modules() if hasattr(m, "shortcut")):
        # the residual sum adds conv2's output to the shortcut's: one set of channels for both
        shortcut_out = block.shortcut[0].out_channels if len(block.shortcut) else block.conv1.in_channels
        assert block.conv2.out_channels == shortcut_out == block.bn2.num_features
    model.eval()(torch.rand(2, 3, 32, 32))


def test_a_structure_that_does_not_fit_the_architecture_is_named(digits, stats, tmp_path) -> None:
    with pytest.raises(ValueError, match="body.99"):
        narrow(fresh("small_cnn", digits, stats), {"body.99": [8, 3]})
    model = fresh("small_cnn", digits, stats)
    path = tmp_path / "bad.pt"
    checkpoint.save(path, model, arch="small_cnn", num_classes=10, mean=stats[0], std=stats[1], dataset="digits",
                    hparams={}, structure={"body.2": [5, 3]})  # body.2 is a ReLU
    with pytest.raises(checkpoint.CheckpointError, match="body.2"):
        checkpoint.load(path)


# -- N:M ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["2:4", "1:4"])
def test_nm_holds_the_pattern_in_every_group_through_fine_tuning(pattern, untrained, few) -> None:
    n, m = nm.parse_pattern(pattern)
    model, _ = checkpoint.load(untrained)
    pruned = nm.prune(model, few, nm.sparsity_of(pattern), TWO_STEPS, CPU, pattern=pattern)
    layers = dict(prunable_weights(pruned))
    patterned = [name for name, module in layers.items() if module.weight.shape[1] % m == 0]
    assert len(patterned) == len(layers) - 1, "only the 3-channel stem stays dense"
    for name in patterned:
        weight = layers[name].weight.detach()
        inner = weight.permute(0, 2, 3, 1) if weight.dim() == 4 else weight  # groups along the inputs
        groups = inner.reshape(-1, m)
        assert int((groups != 0).sum(dim=1).max()) <= n, name
        assert int((groups != 0).sum()) == n * groups.shape[0], f"{name}: N survivors per group"


def test_nm_mask_keeps_the_largest_magnitudes_of_each_group() -> None:
    torch.manual_seed(0)
    weight = torch.randn(3, 8, 2, 2)
    mask = nm.nm_mask(weight, 2, 4)
    for out in range(3):
        for row in range(2):
            for col in range(2):
                for start in (0, 4):
                    values = [abs(float(weight[out, c, row, col])) for c in range(start, start + 4)]
                    largest = sorted(range(4), key=lambda i: -values[i])[:2]
                    expected = [1.0 if i in largest else 0.0 for i in range(4)]
                    assert mask[out, start:start + 4, row, col].tolist() == expected


@pytest.mark.parametrize("pattern", ["2:2", "4:2", "2-4", "a:b", "0:4"])
def test_a_bad_pattern_is_named(pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        nm.parse_pattern(pattern)


def test_nm_refuses_a_sparsity_its_pattern_does_not_give(untrained, few) -> None:
    with pytest.raises(ValueError, match="2:4 removes 50%"):
        nm.prune(checkpoint.load(untrained)[0], few, 0.9, TWO_STEPS, CPU, pattern="2:4")


# -- int8 -----------------------------------------------------------------------------------------------------

def quantized(base: Path, directory: Path) -> Path:
    path = directory / f"{base.stem}-int8.pt"
    quantize_model(quantize_record(base, "int8", 256), path.stem, base, path, datasets.load("digits"))
    return path


@pytest.fixture(scope="module")
def int8(untrained, tmp_path_factory) -> Path:
    """The untrained small CNN quantized: exercises the int8 path without training."""
    return quantized(untrained, tmp_path_factory.mktemp("int8"))


@pytest.mark.slow  # trains the dense model (5 epochs)
def test_int8_agrees_with_its_float_base_on_digits_test_images(dense, digits, tmp_path) -> None:
    int8 = quantized(dense, tmp_path)
    base, _ = checkpoint.load(dense)
    model, meta = checkpoint.load(int8)
    assert quantize.is_quantized(model) and meta["quantization"]["method"] == "int8"
    assert isinstance(model.classifier, nn.Linear), "the final linear layer stays float"
    agreement = float(np.mean(predict(model, digits.test, CPU) == predict(base, digits.test, CPU)))
    assert agreement >= 0.95
    assert accuracy(base, digits.test, CPU) > 0.9
    weights_only_payload(int8)


def test_an_int8_model_runs_on_cpu_whatever_device_extraction_uses(untrained, int8) -> None:
    cuda = torch.device("cuda")
    assert quantize.device_for(checkpoint.load(int8)[0], cuda) == CPU
    assert quantize.device_for(checkpoint.load(untrained)[0], cuda) == cuda


@pytest.fixture(scope="module")
def int8_store(untrained, int8, cli, tmp_path_factory) -> Path:
    """The untrained float model and its int8 copy extracted into one store, as `extract` does it."""
    store = tmp_path_factory.mktemp("int8-store") / "store"
    ran = cli(*extraction.extract_args(store, [untrained, int8]))
    assert ran.returncode == 0, ran.stderr
    return store


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_int8_stored_geometry_is_the_float64_geometry_of_its_dequantized_features(int8, int8_store) -> None:
    store = int8_store
    table = extraction.prediction_rows(store)
    clean = table.filter(pc.and_(pc.equal(table["corruption"], "clean"),
                                 pc.equal(table["model_id"], "small_cnn-dense-s0-int8")))
    ids = clean["sample_id"].to_numpy()
    model, _ = checkpoint.load(int8)
    assert quantize.is_quantized(model)
    data = datasets.load("digits")
    images = data.test.images[ids]
    with torch.no_grad():
        features = model.forward_features(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).double()
    weight = model.classifier.weight.detach().double()
    bias = model.classifier.bias.detach().double()
    labels = torch.from_numpy(data.test.labels[ids].astype(np.int64))
    logits = features @ weight.T + bias
    norm = features.norm(dim=1)
    w_true = weight[labels]
    cos_true = (features * w_true).sum(dim=1) / (norm * w_true.norm(dim=1))
    np.testing.assert_allclose(clean["feature_norm"].to_numpy(), norm.numpy(), rtol=1e-5)
    np.testing.assert_allclose(clean["angle_true"].to_numpy(), torch.rad2deg(torch.arccos(cos_true)).numpy(),
                               atol=1e-3)
    np.testing.assert_array_equal(clean["pred"].to_numpy(), logits.argmax(dim=1).numpy())
    cards = {row["model_id"]: row for row in pq.read_table(store / "models.parquet").to_pylist()}
    card = cards["small_cnn-dense-s0-int8"]  # measured at extraction (compute.footprint)
    assert card["operation"] == "int8" and card["method"] == "int8" and card["base"] == "small_cnn-dense-s0"
    assert card["file_bytes"] == int8.stat().st_size
    assert card["latency_ms_batch1"] > 0 and card["latency_ms_batch256"] > 0 and card["latency_threads"] == 1
    assert card["num_params"] == footprint.parameters(model)[0]


@pytest.mark.slow  # trains the dense model (5 epochs)
def test_a_channel_pruned_model_quantizes_and_records_both_bases(dense, digits, few, stats, tmp_path) -> None:
    base_model, base_meta = checkpoint.load(dense)
    dense_record = runs.of_checkpoint(base_meta)
    record = runs.pruned_run("small_cnn", "digits", "channel", 0.5, 0, runs.schedule({"epochs": 1}), {},
                             dense_record.digest, None)
    channel_path = tmp_path / "small_cnn-channel-50-s0.pt"
    train_pruned(record, "small_cnn-channel-50-s0", channel_path, dataclasses.replace(digits, train=few), stats, CPU,
                 base_model, None)
    chain_path = tmp_path / "small_cnn-channel-50-s0-int8.pt"
    results = quantize_model(quantize_record(channel_path, "int8", 128), chain_path.stem, channel_path, chain_path,
                             digits)

    model, meta = checkpoint.load(chain_path)
    assert meta["structure"] and meta["quantization"]["method"] == "int8"
    chain = runs.of_checkpoint(meta)
    assert chain.method == "channel+int8" and chain.sparsity == 0.5
    assert runs.lineage(meta) == [record.digest, dense_record.digest]
    float_model, _ = checkpoint.load(channel_path)
    agreement = np.mean(predict(model, digits.test, CPU) == predict(float_model, digits.test, CPU))
    assert agreement >= 0.95
    assert results["sparsity"] > 0.5, "removed channels count as removed weights"


def test_operation_labels_say_how_each_model_was_made_from_its_base() -> None:
    def label(method: str, sparsity: float, options: dict | None = None) -> str:
        return runs.operation(runs.RunRecord("small_cnn", "digits", method, sparsity, 0, {}, options or {}))

    assert label("dense", 0.0) == "train"
    assert label("ft", 0.9) == "prune ft 90 %, fine-tune"
    assert label("channel", 0.5) == "prune channel 50 %, fine-tune"
    assert label("nm", 0.5, {"pattern": "2:4"}) == "2:4, fine-tune"
    assert label("snip", 0.9) == "prune snip 90 % from init"
    assert label("int8", 0.0) == label("channel+int8", 0.5) == "int8"


# -- size and latency -----------------------------------------------------------------------------------------

def test_extraction_times_latency_as_often_as_the_environment_says_and_names_a_bad_value(monkeypatch) -> None:
    from compute import cards

    monkeypatch.delenv(footprint.REPEATS_VARIABLE, raising=False)
    assert footprint.repeats() == footprint.REPEATS == 3
    monkeypatch.setenv(footprint.REPEATS_VARIABLE, " 7 ")
    assert footprint.repeats() == 7
    asked = []
    monkeypatch.setattr(footprint, "measure", lambda model, file, size, repeats: asked.append(repeats) or
                        footprint.Footprint(1, 1, None, 1.0, 1.0, 1, 0.0))
    monkeypatch.setattr(footprint, "state_dict_bytes", lambda model: 1)
    entry = cards.ExtractModel("m", nn.Linear(2, 2))
    cards.measure_footprints([entry], 32)
    assert asked == [7] and entry.info["latency_ms_batch1"] == 1.0 and entry.info["file_bytes"] == 1
    for bad in ("0", "-1", "2.5", "many", "101"):
        monkeypatch.setenv(footprint.REPEATS_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"PRUNESCOPE_LATENCY_REPEATS is '{bad}'"):
            footprint.repeats()


def test_footprint_counts_parameters_non_zeros_bytes_and_latency(untrained, int8) -> None:
    base, _ = checkpoint.load(untrained)
    model, _ = checkpoint.load(int8)
    threads = torch.get_num_threads()
    measured = footprint.measure(base, untrained, image_size=32, repeats=2)
    assert measured.latency_threads == 1 and torch.get_num_threads() == threads, "one thread, then restored"
    assert measured.num_params == sum(p.numel() for p in base.parameters())
    assert measured.num_nonzero == sum(int((p != 0).sum()) for p in base.parameters())
    assert measured.file_bytes == untrained.stat().st_size
    assert measured.latency_ms_batch1 > 0 and measured.latency_ms_batch256 > 0 and measured.latency_load_average >= 0
    # int8 folds each batch norm into its convolution: the convolutions' weights and biases remain
    folded = sum(m.weight.numel() + m.out_channels for m in base.modules() if isinstance(m, nn.Conv2d))
    float_rest = sum(p.numel() for p in base.classifier.parameters())
    assert footprint.parameters(model)[0] == folded + float_rest
    assert footprint.saved_bytes(int8) < 0.4 * footprint.saved_bytes(untrained), "int8 weights: a quarter"


# -- the command line and the study file ----------------------------------------------------------------------

@pytest.mark.slow  # fine-tunes, quantizes and evaluates through the command line (10-30 s)
def test_prune_and_quantize_commands_chain_nm_and_int8(untrained, cli, tmp_path) -> None:
    nm_path, int8_path = tmp_path / "nm.pt", tmp_path / "nm-int8.pt"
    ran = cli("prune", "--method", "nm", "--pattern", "2:4", "--dense", untrained, "--epochs", "1",
              "--batch-size", "256", "--device", "cpu", "--out", nm_path)
    assert ran.returncode == 0, ran.stderr
    record = runs.of_checkpoint(checkpoint.read(nm_path))
    assert (record.method, record.sparsity, record.options) == ("nm", 0.5, {"pattern": "2:4"})
    ran = cli("quantize", "--base", nm_path, "--method", "int8", "--calibration", "64", "--out", int8_path)
    assert ran.returncode == 0, ran.stderr
    model, meta = checkpoint.load(int8_path)
    chain = runs.of_checkpoint(meta)
    assert chain.method == "nm+int8" and chain.options == {"calibration": 64, "backend": quantize.BACKEND}
    assert runs.lineage(meta) == [record.digest, record.base_digest]
    assert meta["hparams"]["model_id"] == "small_cnn-nm-50-int8-s0"
    assert footprint.sparsity(model, fresh("small_cnn", datasets.load("digits"), ([0.5] * 3, [0.25] * 3))) > 0.45
    ran = cli("quantize", "--base", int8_path, "--out", tmp_path / "twice.pt")
    assert ran.returncode == 2 and "already quantized" in ran.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "nm", "--pattern", "2:2"], "pattern must be N:M"),
    (["--method", "ft", "--sparsity", "0.5", "--pattern", "2:4"], "ft takes no pattern"),
    (["--method", "nm", "--pattern", "2:4", "--sparsity", "0.9"], "disagrees with the nm pattern 2:4"),
    (["--method", "channel"], "--sparsity is required for --method channel"),
    (["--method", "channel", "--sparsity", "0.5", "--include-classifier"], "--include-classifier: channel takes"),
])
def test_prune_command_names_a_bad_structured_request(args, message, untrained, cli, tmp_path) -> None:
    ran = cli("prune", *args, "--dense", untrained, "--out", tmp_path / "x.pt")
    assert ran.returncode == 2 and message in ran.stderr and "Traceback" not in ran.stderr


def test_quantize_command_names_a_missing_base(cli, tmp_path) -> None:
    ran = cli("quantize", "--base", tmp_path / "nope.pt", "--out", tmp_path / "x.pt")
    assert ran.returncode == 2 and "nope.pt" in ran.stderr


STUDY = 'arch = "small_cnn"\ndataset = "digits"\n[methods.channel]\nsparsities = [0.5]\n'


def test_a_study_file_derives_int8_models_and_takes_nm_by_pattern(tmp_path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(STUDY + '[methods.nm]\npattern = "1:4"\n[[model]]\nbase = "channel-50"\nop = "quantize"\n'
                    '[[model]]\nbase = "nm-75"\nop = "quantize"\nmethod = "int8"\ncalibration = 64\n')
    study = Study.from_toml(path)
    assert study.methods[1].sparsities == (0.75,)
    assert study.derived == (DerivedPlan("channel-50", "quantize", "int8"), DerivedPlan("nm-75", "quantize", "int8", 64))
    assert study.derived_ids(study.derived[0], 1) == ("small_cnn-channel-50-s1", "small_cnn-channel-50-int8-s1")
    assert derived_id("my-net", "int8") == "my-net-int8"


@pytest.mark.parametrize(("text", "message"), [
    ('[[model]]\nbase = "ft-50"\nop = "quantize"', "base 'ft-50' is no model of the study"),
    ('[[model]]\nbase = "dense"\nop = "distil"', "unknown op 'distil'"),
    ('[[model]]\nbase = "dense"\nop = "quantize"\nmethod = "int4"', "unknown quantize method 'int4'"),
    ('[[model]]\nbase = "dense"\nop = "quantize"\ncalibration = 0', "calibration must be"),
    ('[[model]]\nop = "quantize"', "needs base and op"),
    ('[methods.nm]\npattern = "4:2"', "pattern must be N:M"),
    ('[methods.nm]\nsparsities = [0.9]', "fix the sparsity at 0.5"),
])
def test_study_file_mistakes_in_structured_methods_and_derived_models_are_named(text, message, tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(STUDY + text)
    with pytest.raises(StudyError, match=message) as error:
        Study.from_toml(path)
    assert str(path) in str(error.value)


@pytest.mark.slow  # trains a tiny study and extracts it, twice
def test_a_study_with_channel_nm_and_int8_models_trains_resumably_and_extracts_them(tmp_path) -> None:
    study = Study(arch="small_cnn", dataset="digits", dense={"epochs": 1}, finetune={"epochs": 1},
                  methods=(MethodPlan("channel", (0.5,)), MethodPlan("nm", (0.5,))),
                  derived=(DerivedPlan("dense", "quantize", "int8", 64), DerivedPlan("channel-50", "quantize", "int8", 64)),
                  corruptions=("contrast",), severities=(1,), limit=20)
    out = tmp_path / "study"
    run_study(study, out, CPU)
    paths = sorted((out / "checkpoints").glob("*.pt"))
    assert [p.name.split(".")[0] for p in paths] == [
        "small_cnn-channel-50-int8-s0", "small_cnn-channel-50-s0", "small_cnn-dense-int8-s0", "small_cnn-dense-s0",
        "small_cnn-nm-50-s0"]
    before = {p: p.stat().st_mtime_ns for p in paths}
    run_study(study, out, CPU)
    assert {p: p.stat().st_mtime_ns for p in paths} == before, "a rerun makes nothing again"
    models_table = pq.read_table(out / "models.parquet").to_pylist()
    assert {row["model_id"]: row["method"] for row in models_table}["small_cnn-channel-50-int8-s0"] == "channel+int8"


def test_footprint_command_prints_one_row_per_checkpoint(untrained, int8, cli) -> None:
    ran = cli("footprint", "--checkpoints", untrained, int8, "--repeats", "1")
    assert ran.returncode == 0, ran.stderr
    rows = [line for line in ran.stdout.splitlines() if line.startswith(f"| {untrained.name}")
            or line.startswith(f"| {int8.name}")]
    assert len(rows) == 2
    assert rows[0].split("|")[4].strip() == f"{untrained.stat().st_size:,}"


def test_robustness_vs_cost_draws_one_panel_per_measured_cost() -> None:
    frame = pl.DataFrame({
        "model_id": ["d", "c", "q", "old"], "method": ["dense", "channel", "int8", "ft"],
        "clean_accuracy": [0.98, 0.97, 0.98, 0.9], "corruption_accuracy": [0.7, 0.65, 0.69, 0.6],
        "file_bytes": [387_873, 105_441, 110_363, None], "latency_ms_batch1": [2.4, 0.8, 0.24, None],
        "latency_ms_batch256": [2.8, 0.8, 0.13, None]})
    assert has_costs(frame) and not has_costs(frame.filter(pl.col("model_id") == "old"))
    spec = robustness_vs_cost(frame).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert len(rows) == 9, "three costs for three measured models; the unmeasured one is left out"
    assert {row["cost"] for row in rows} == set(COSTS.values())
    assert {row["model_id"] for row in rows} == {"d", "c", "q"}


def test_overview_plots_robustness_against_size_and_latency_and_labels_lineage_edges(int8_store, open_page) -> None:
    app = open_page(int8_store, PAGES["overview"].script)
    assert "Robustness vs size and latency" in [header.value for header in app.subheader]
    nodes, edges = tree_layout(queries.models(Catalog(int8_store)))
    assert edges.select("base", "model_id", "label").rows() == [("small_cnn-dense-s0", "small_cnn-dense-s0-int8", "int8")]
