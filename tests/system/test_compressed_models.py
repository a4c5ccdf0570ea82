"""Compressed copies of a network of one's own, as people make them: a tiny torchvision-style net and three
copies (torch.nn.utils.prune magnitude masks, Torch-Pruning channels, torch.ao FX int8), saved by the
README's own lines, described in a models file, extracted; each card (sparsity, file size, base) and an
attribution map checked. And the one-line errors with the likely fix for the files that do not load."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch_pruning
from torch import nn

from compute import attribution, byo, loading, pixels, quantize
from compute.cards import read_models_file
from store import layout

ROOT = Path(__file__).resolve().parents[2]
NETS = textwrap.dedent('''
    import torch
    from torch import nn


    class Tiny(nn.Module):
        """torchvision's shape: a conv stem, a residual block, a strided conv, pooling and `fc`."""

        def __init__(self, num_classes=10, width=8):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
            self.bn3 = nn.BatchNorm2d(2 * width)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2 * width, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.relu(x + self.bn2(self.conv2(x)))
            x = self.relu(self.bn3(self.conv3(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))


    def tiny():
        return Tiny()


    def broken():
        return torch.load(__file__.replace("my_nets.py", "runs/tp_state.pt"), weights_only=True)
''')
MODELS = textwrap.dedent('''
    [tiny-dense]
    model = "my_nets:tiny"
    weights = "runs/dense.pt"
    method = "dense"

    [tiny-mag80]
    model = "my_nets:tiny"
    weights = "runs/mag80.pt"
    method = "magnitude"
    sparsity = 0.8
    base = "tiny-dense"

    [tiny-channel50]
    model = "my_nets:tiny"
    weights = "runs/channel50.pt"
    structure = "from-weights"
    method = "channel"
    sparsity = 0.5
    base = "tiny-dense"

    [tiny-int8]
    model = "my_nets:tiny"
    weights = "runs/int8.pt"
    structure = "from-weights"
    method = "int8"
    base = "tiny-dense"
''')


def readme_saving_block() -> str:
    """The README's python block that saves the three copies."""
    blocks = (ROOT / "README.md").read_text().split("```python\n")[1:]
    found = [block.split("```")[0] for block in blocks if "convert_fx" in block]
    assert len(found) == 1
    return found[0]


def prunable_conv_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.fixture(scope="module")
def brought(tmp_path_factory) -> dict:
    """The folder with my_nets.py, runs/*.pt and models.toml, the dense network and its channel-pruned copy."""
    folder = tmp_path_factory.mktemp("brought")
    (folder / "my_nets.py").write_text(NETS)
    (folder / "runs").mkdir()
    (folder / "models.toml").write_text(MODELS)
    namespace: dict = {}
    exec(compile(NETS, "my_nets.py", "exec"), namespace)  # noqa: S102 (the test's own module text)
    torch.manual_seed(0)
    dense = namespace["tiny"]().eval()
    with torch.no_grad():  # batch norms with statistics of their own, so folding them changes something
        for module in dense.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    torch.save(dense.state_dict(), folder / "runs" / "dense.pt")

    magnitude = copy.deepcopy(dense)
    convs = [(m, "weight") for m in magnitude.modules() if isinstance(m, nn.Conv2d)]
    nn.utils.prune.global_unstructured(convs, nn.utils.prune.L1Unstructured, amount=0.8)

    channel = copy.deepcopy(dense)
    example = torch.rand(2, 3, 32, 32)
    torch_pruning.pruner.MagnitudePruner(channel, example, importance=torch_pruning.importance.MagnitudeImportance(p=1),
                                         pruning_ratio=0.5, ignored_layers=[channel.fc]).step()

    calibration = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    saving = {"torch": torch, "magnitude": magnitude, "channel": channel, "dense": copy.deepcopy(dense),
              "calibration": calibration}
    with pytest.MonkeyPatch.context() as patch, quantize.quiet():
        patch.chdir(folder)
        exec(compile(readme_saving_block(), "README.md", "exec"), saving)  # noqa: S102 (the README's lines)
    torch.save(torch_pruning.state_dict(channel), folder / "runs" / "tp_state.pt")  # Torch-Pruning's own way
    return {"folder": folder, "dense": dense, "channel": channel}


@pytest.fixture(scope="module")
def extracted(brought, cli, latency_not_timed) -> Path:
    store = brought["folder"] / "store"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(brought["folder"]))
        patch.setattr("compute.footprint.latency", latency_not_timed)
        ran = cli("extract", "--store", store, "--models", brought["folder"] / "models.toml", "--limit", "6",
                  "--corruptions", "fog", "--severities", "5", "--device", "cpu", "--batch-size", "6")
    assert ran.returncode == 0, ran.stderr
    return store


def cards(store: Path) -> dict[str, dict]:
    return {row["model_id"]: row for row in pq.read_table(store / layout.MODELS).to_pylist()}


def test_each_copy_is_extracted_with_its_base_and_file_size(extracted, brought) -> None:
    found = cards(extracted)
    assert set(found) == {"tiny-dense", "tiny-mag80", "tiny-channel50", "tiny-int8"}
    for model_id, file in [("tiny-dense", "dense"), ("tiny-mag80", "mag80"), ("tiny-channel50", "channel50"),
                           ("tiny-int8", "int8")]:
        card = found[model_id]
        assert card["file_bytes"] == (brought["folder"] / "runs" / f"{file}.pt").stat().st_size
        assert card["base"] == (None if model_id == "tiny-dense" else "tiny-dense")
        assert card["clean_accuracy"] is not None
    assert json.loads(found["tiny-channel50"]["loader"])["structure"] == "from-weights"


def test_measured_sparsity_counts_zeroed_and_removed_weights_against_the_unpruned_network(extracted, brought) -> None:
    found = cards(extracted)
    full = prunable_conv_weights(brought["dense"])
    kept = sum(int(torch.count_nonzero(m.weight)) for m in brought["channel"].modules() if isinstance(m, nn.Conv2d))
    assert found["tiny-dense"]["sparsity"] == pytest.approx(0.0, abs=1e-6)
    assert found["tiny-mag80"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert found["tiny-channel50"]["sparsity"] == pytest.approx(1 - kept / full, abs=1e-6)
    assert found["tiny-channel50"]["sparsity"] > 0.5  # half the channels: about three quarters of the weights
    assert found["tiny-int8"]["sparsity"] < 0.05  # int8 rounds a few weights to zero, removes none
    assert found["tiny-channel50"]["num_params"] < found["tiny-dense"]["num_params"]


def test_the_int8_copy_is_the_quantized_network(extracted, brought) -> None:
    """Its predictions follow the saved int8 network: close to the dense one's, through quantized layers."""
    card = cards(extracted)["tiny-int8"]
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(brought["folder"]))
        model = loading.load_model(card, 32)
    assert quantize.is_quantized(model)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(model(x), brought["dense"](x), atol=0.1)


def test_attribution_runs_for_each_copy(extracted, brought, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(brought["folder"]))
    monkeypatch.setenv("PRUNESCOPE_ALLOW_ROOTS", str(brought["folder"]))
    image = pixels.image(extracted, 0, "clean", 0)
    for model_id, card in cards(extracted).items():
        maps = attribution.occlusion_maps(str(extracted), card["checkpoint"], image, 0, loader=card["loader"])
        values = np.concatenate([np.ravel(value) for key, value in maps.items() if key != "original"])
        assert np.isfinite(values).any(), model_id


# -- the files that do not load: one line each, with the likely fix -------------------------------------

@pytest.fixture
def on_path(brought, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(brought["folder"]))
    return brought["folder"]


def test_an_exception_in_the_function_is_one_error_line_naming_it(on_path, cli, tmp_path) -> None:
    ran = cli("extract", "--store", tmp_path / "s", "--model", "my_nets:broken", "--limit", "2",
              "--corruptions", "fog", "--severities", "5")
    assert ran.returncode == 2
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("error: my_nets:broken() raised UnpicklingError")
    assert "--structure from-weights" in ran.stderr and "Traceback" not in ran.stderr


@pytest.mark.parametrize(("weights", "structure", "fix"), [
    ("mag80-masks.pt", None, "call torch.nn.utils.prune.remove(module, 'weight')"),
    ("channel50.pt", None, "the tensors are narrower than the model: a structurally pruned model"),
    ("int8.pt", None, "this is a quantized state dict"),
])
def test_a_file_that_does_not_load_says_the_likely_fix(on_path, brought, weights, structure, fix) -> None:
    if weights == "mag80-masks.pt":  # prune.remove forgotten
        masked = copy.deepcopy(brought["dense"])
        nn.utils.prune.l1_unstructured(masked.conv1, "weight", amount=0.5)
        torch.save(masked.state_dict(), on_path / "runs" / weights)
    with pytest.raises(ValueError) as raised:
        byo.load_user_model("my_nets:tiny", str(on_path / "runs" / weights), structure=structure)
    message = str(raised.value)
    assert fix in message and "\n" not in message and len(message) < 700


def test_a_models_file_structure_needs_weights_and_a_function(tmp_path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[a]\nmodel = "my_nets:tiny"\nstructure = "from-weights"\n')
    with pytest.raises(ValueError, match=r"table \[a\]: key 'structure'"):
        read_models_file(path)
    path.write_text('[a]\nmodel = "my_nets:tiny"\nweights = "w.pt"\nstructure = "guess"\n')
    with pytest.raises(ValueError, match="'guess'"):
        read_models_file(path)
