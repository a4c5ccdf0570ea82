"""What each method pruned, layer by layer: compute.layers.layer_rows against a brute-force count of every
weight, the rows extraction writes into layers.parquet, `compute index` adding them to a store written
before them, and (slow) the demo's methods trained briefly, whose profiles differ as each method says:
global masks (gmp, snip) spread their zeros unevenly over the layers, channel pruning removes whole output
channels and zeroes nothing, 2:4 zeroes exactly half of every layer it applies to."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from compute import checkpoint
from compute.layers import index_missing, layer_rows
from compute.pruning import channel, nm
from compute.pruning.masks import global_magnitude, make_permanent
from store import layout, reader
from testkit.app import attach_checkpoint

CPU = torch.device("cpu")
FIELDS = ("kind", "num_weights", "num_nonzero", "out_channels", "live_out_channels")


def brute_force(model: nn.Module) -> dict[str, dict]:
    """Per weight tensor of a conv or linear layer (a `.weight` of 2 or 4 dimensions in the state dict), each
    weight visited one by one: its count, non-zeros, output channels, output channels with a non-zero
    weight, and its L2 norm."""
    counted = {}
    for key, tensor in model.state_dict().items():
        if not key.endswith(".weight") or tensor.dim() not in (2, 4):
            continue
        rows = tensor.detach().reshape(tensor.shape[0], -1).tolist()
        nonzero = [sum(1 for value in row if value != 0) for row in rows]
        counted[key.removesuffix(".weight")] = {
            "kind": "conv" if tensor.dim() == 4 else "linear", "num_weights": sum(len(row) for row in rows),
            "num_nonzero": sum(nonzero), "out_channels": len(rows), "live_out_channels": sum(n > 0 for n in nonzero),
            "weight_norm": math.sqrt(sum(value * value for row in rows for value in row))}
    return counted


def assert_matches_brute_force(rows: list[dict], model: nn.Module) -> None:
    expected = brute_force(model)
    assert [row["layer"] for row in rows] == list(expected)  # every layer once, in network order
    assert [row["position"] for row in rows] == list(range(len(rows)))
    for row in rows:
        counted = expected[row["layer"]]
        assert {f: row[f] for f in FIELDS} == {f: counted[f] for f in FIELDS}, row["layer"]
        assert row["weight_norm"] == pytest.approx(counted["weight_norm"], rel=1e-6), row["layer"]


@pytest.fixture(scope="module")
def dense(checkpoints) -> nn.Module:
    return checkpoint.load(checkpoints[0])[0]


def masked(dense: nn.Module) -> nn.Module:
    model = copy.deepcopy(dense)
    global_magnitude(model, 0.8)
    return make_permanent(model)


def two_four(dense: nn.Module) -> nn.Module:
    model = copy.deepcopy(dense)
    with torch.no_grad():
        for name, mask in nm.nm_masks(model, "2:4").items():
            model.get_submodule(name).weight.mul_(mask)
    return model


def channels_removed(dense: nn.Module) -> nn.Module:
    model = copy.deepcopy(dense).eval()
    return channel.remove_channels(model, torch.rand(2, 3, 32, 32), 0.5)


@pytest.mark.parametrize("make", [lambda m: m, masked, two_four, channels_removed],
                         ids=["dense", "global magnitude", "2:4", "channels removed"])
def test_layer_rows_match_a_brute_force_count_of_every_weight(dense, make) -> None:
    model = make(dense)
    rows = layer_rows(model)
    assert_matches_brute_force(rows, model)
    assert rows[-1]["layer"] == "classifier" and rows[-1]["kind"] == "linear"


def test_a_layer_whose_output_channel_is_all_zero_has_one_live_channel_less(dense) -> None:
    model = copy.deepcopy(dense)
    with torch.no_grad():
        model.body[4].weight[3].zero_()
    row = next(r for r in layer_rows(model) if r["layer"] == "body.4")
    assert row["live_out_channels"] == row["out_channels"] - 1
    assert row["num_nonzero"] == row["num_weights"] - model.body[4].weight[3].numel()


def test_extraction_records_every_models_layers_in_the_store(two_shards, checkpoints) -> None:
    table = reader.read_layers(two_shards.store)
    assert set(table.column("model_id").to_pylist()) == {"small0"}
    assert_matches_brute_force(table.drop_columns(["model_id"]).to_pylist(), checkpoint.load(checkpoints[0])[0])


def test_index_adds_layer_rows_to_an_old_store_from_the_checkpoints_it_can_load(synthetic_store, pristine_copy,
                                                                                cli) -> None:
    store = pristine_copy(synthetic_store(num_models=3, num_samples=20, corruptions=("fog",), severities=(1,)))
    (store / layout.LAYERS).unlink()  # a store written before layers.parquet
    path = attach_checkpoint(store, "m01-ft-50")
    result = cli("index", "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "layers: 1 model(s) added" in result.stdout
    assert "m00-dense-0, m02-gmp-50 (This model has no checkpoint recorded" in result.stdout  # named, with the reason
    table = reader.read_layers(store)
    assert set(table.column("model_id").to_pylist()) == {"m01-ft-50"}
    assert_matches_brute_force(table.drop_columns(["model_id"]).to_pylist(), checkpoint.load(path)[0])
    added, failed = index_missing(store)  # again: the recorded model is not loaded twice
    assert added == [] and sorted(failed) == ["m00-dense-0", "m02-gmp-50"]


def test_models_without_layer_rows_are_named_once_per_reason_a_few_each() -> None:
    from compute.commands.index import named_by_reason

    failed = {f"m{i:03d}": "no checkpoint" for i in range(105)} | {"odd": "file damaged"}
    assert named_by_reason(failed) == "m000, m001, m002, m003, m004 and 100 more (no checkpoint); odd (file damaged)"


# -- the demo's methods, briefly trained (slow) ------------------------------------------------------------

DEMO_METHODS = ("gmp", "snip", "channel", "nm")
# The small CNN's layers whose input channels come in groups of 4 (32 and 64): the 3-channel stem and the
# classifier (not pruned) stay dense under 2:4.
TWO_FOUR_LAYERS = ("body.4", "body.8")


@pytest.fixture(scope="module")
def demo_methods(tmp_path_factory, one_thread) -> Path:
    """A study of the demo's own plans for gmp, snip, channel and 2:4 (studies/digits.toml) and its int8
    model, each trained for one epoch, extracted on 40 clean images: the store and its checkpoints."""
    from compute import study as studies
    from compute.demo import demo_study

    demo = demo_study()
    plans = tuple(dataclasses.replace(plan, train={**plan.train, "epochs": 1}) for plan in demo.methods
                  if plan.method in DEMO_METHODS)
    study = dataclasses.replace(demo, methods=plans, dense={**demo.dense, "epochs": 1},
                                finetune={**demo.finetune, "epochs": 1}, corruptions=(), severities=(1,), limit=40,
                                derived=tuple(dataclasses.replace(d, calibration=64) for d in demo.derived))
    out = tmp_path_factory.mktemp("demo-methods") / "store"
    studies.run(study, out, CPU)
    return out


def profiles(store: Path) -> dict[str, dict[str, dict]]:
    """method -> layer -> its row of layers.parquet."""
    methods = dict(zip(*reader.read_table(store / layout.MODELS).select(["model_id", "method"]).to_pydict().values(),
                       strict=True))
    found: dict[str, dict[str, dict]] = {}
    for row in reader.read_layers(store).to_pylist():
        found.setdefault(methods[row["model_id"]], {})[row["layer"]] = row
    return found


def sparsity(row: dict) -> float:
    return 1 - row["num_nonzero"] / row["num_weights"]


@pytest.mark.slow  # training: five methods for one epoch each
def test_the_demo_methods_layer_rows_are_their_checkpoints_brute_force_counts(demo_methods) -> None:
    table = reader.read_layers(demo_methods)
    cards = reader.read_table(demo_methods / layout.MODELS).to_pylist()
    assert {card["method"] for card in cards} >= {"dense", *DEMO_METHODS}
    for card in cards:
        if card["method"] == "int8":
            continue  # its weights are packed int8 tensors, not `.weight`s of the state dict
        rows = [row for row in table.to_pylist() if row["model_id"] == card["model_id"]]
        assert_matches_brute_force(rows, checkpoint.load(demo_methods / card["checkpoint"])[0])


@pytest.mark.slow  # training: five methods for one epoch each
def test_the_demo_methods_prune_their_layers_as_each_method_says(demo_methods) -> None:
    found = profiles(demo_methods)
    dense, gmp, snip, chan, two_four = (found[m] for m in ("dense", *DEMO_METHODS))
    convs = [name for name, row in dense.items() if row["kind"] == "conv"]
    # gmp and snip rank every layer's weights together: their zeros spread unevenly, and differently
    for mask in (gmp, snip):
        spread = [sparsity(mask[name]) for name in convs]
        assert max(spread) - min(spread) > 0.05, spread
        assert {name: row["out_channels"] for name, row in mask.items()} == \
            {name: row["out_channels"] for name, row in dense.items()}
        assert sparsity(mask["classifier"]) == 0.0  # the classifier is not pruned
    assert max(abs(sparsity(gmp[name]) - sparsity(snip[name])) for name in convs) > 0.02
    # channel pruning removes whole output channels (half of them over the network) and zeroes nothing
    assert all(chan[name]["out_channels"] <= dense[name]["out_channels"] for name in convs)
    assert sum(chan[name]["out_channels"] for name in convs) == pytest.approx(
        0.5 * sum(dense[name]["out_channels"] for name in convs), abs=2)
    assert all(chan[name]["num_nonzero"] == chan[name]["num_weights"] for name in chan)
    assert chan["classifier"]["out_channels"] == dense["classifier"]["out_channels"]
    # 2:4 zeroes exactly half of every layer whose inputs come in groups of 4, and leaves the others dense
    for name, row in two_four.items():
        expected = row["num_weights"] // 2 if name in TWO_FOUR_LAYERS else row["num_weights"]
        assert row["num_nonzero"] == expected, name
    # int8 keeps its base's layers, by name, with every weight
    int8 = found["int8"]
    assert set(int8) == set(dense) and all(int8[name]["out_channels"] == dense[name]["out_channels"] for name in dense)
