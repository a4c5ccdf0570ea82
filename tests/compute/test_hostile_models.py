"""What a model card, a checkpoint or a models file can do to a server or a command (issue 28): each
hostile input is built here and refused in one line, with nothing allocated, run or printed whole.

A memory bomb runs in a child process under an address-space limit (RLIMIT_AS), so a regression fails the
test instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from compute import cards, checkpoint, loading
from store import bases, confine
from store.layout import StoreError
from testkit import extraction

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 6 << 30  # address space of the child: torch, scipy and a small model fit, a 9 GB layer does not


def _limited(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """`script` in a child Python limited to MEMORY_LIMIT bytes of address space, one thread."""
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _with_structure(source: Path, target: Path, structure: dict) -> Path:
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["structure"] = structure
    torch.save(payload, target)
    return target


@pytest.mark.slow
def test_a_structure_declaring_layers_16000_wide_is_refused_on_every_path_before_allocating(checkpoints,
                                                                                            tmp_path) -> None:
    """body.4 (a 32 -> 64 convolution) declared 16,000 x 16,000: 9.2 GB if built. Attribution, extract
    --checkpoints, footprint and quantize each refuse it in one line, under a 6 GB address-space limit."""
    _with_structure(checkpoints[0], tmp_path / "bomb.pt", {"body.4": [16000, 16000]})
    script = f"""
        import contextlib, io, sys
        from compute.__main__ import main
        from compute import loading
        from store.layout import StoreError
        try:
            loading.load_model({{"checkpoint": "bomb.pt", "loader": None}}, 32, root=".")
        except StoreError as error:
            print("attribution:", error)
        for args in ({extraction.extract_args(tmp_path / "store", [Path("bomb.pt")])!r},
                     ["footprint", "--checkpoints", "bomb.pt"],
                     ["quantize", "--base", "bomb.pt", "--out", "int8.pt", "--calibration", "4"]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(args)
            print(args[0] + ":", code, err.getvalue().strip())
    """
    ran = _limited(script, tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    lines = ran.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["attribution", "extract", "footprint", "quantize"], ran.stdout
    for line in lines:
        assert "as [16000, 16000], a tensor 'body.4.weight' of shape (16000, 16000, 3, 3); the stored one is (64, 32, 3, 3)" in line, line
        assert "Traceback" not in line and str(tmp_path) not in line.partition(":")[2].replace("bomb.pt", ""), line
    assert lines[0].startswith("attribution: checkpoint bomb.pt: its structure declares layer 'body.4'")
    for line in lines[1:]:
        assert ": 2 error: checkpoint bomb.pt: its structure declares layer 'body.4'" in line, line


def test_a_checkpoint_whose_declared_model_exceeds_the_budget_is_refused_before_building(checkpoints) -> None:
    """The parameter count of the declared model is bounded too, before any layer is allocated: with a
    budget below the small CNN's size, the checkpoint is refused by size, not built."""
    payload = checkpoint.read(checkpoints[0])
    with pytest.raises(checkpoint.CheckpointError, match=r"takes 0\.0 GB, more than the 0\.0 GB"):
        checkpoint.bounded(payload, "small0.pt", budget=1000)
    checkpoint.bounded(payload, "small0.pt")  # within the real budget


@pytest.mark.parametrize(("structure", "message"), [
    ({"body.4": [2 ** 40, 64]}, "each must be a whole number from 1 to"),
    ({"body.4": "wide"}, "not a list of whole numbers"),
    ({"body.4": [64.5, 32]}, "each must be a whole number"),
    ([1, 2], "not a mapping of layer names to widths"),
])
def test_a_malformed_structure_is_named_not_raised(structure, message, checkpoints, tmp_path) -> None:
    path = _with_structure(checkpoints[0], tmp_path / "odd.pt", structure)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(path)


def test_a_checkpoint_file_larger_than_the_budget_is_not_read(checkpoints, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoint, "MODEL_BUDGET", 1000)
    with pytest.raises(checkpoint.CheckpointError, match="more than the 0.0 GB a model may take here"):
        checkpoint.read(checkpoints[0])


def _module_card(function: str, weights: str | None = None) -> dict:
    return {"checkpoint": weights, "loader": json.dumps({"kind": "module", "function": function, "normalize": None})}


def test_a_cards_loader_never_names_an_installed_package_even_under_an_allowed_root(tmp_path, monkeypatch) -> None:
    """The README's old advice made the directory holding `.venv` an allowed root; a card naming an
    installed package's class or function (`torch.nn:Identity` here, `collect_env:main` in the report) is
    still refused, naming --allow-module, until the operator names the module."""
    monkeypatch.setenv(loading.MODULES_VARIABLE, "")  # restored after the test
    monkeypatch.setenv(confine.ROOTS_VARIABLE, str(Path(sys.prefix).resolve().parent))  # holds the venv
    problem = loading.missing_checkpoint(tmp_path, None, _module_card("torch.nn:Identity")["loader"])
    assert problem is not None and "installed package" in problem and "--allow-module torch" in problem, problem
    with pytest.raises(StoreError, match="--allow-module torch"):
        loading.load_model(_module_card("torch.nn:Identity"), 32, root=tmp_path)
    loading.allow_modules(["torch"])
    assert loading.missing_checkpoint(tmp_path, None, _module_card("torch.nn:Identity")["loader"]) is None


EVIL = '''
import os
from json import loads as main
from torch import nn

system = os.system


def text():
    return "not a model"


class Net(nn.Module):
    pass
'''


def _importable_evil(tmp_path, monkeypatch) -> None:
    """Module `evil` (EVIL) importable from tmp_path/code, an allowed root."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "evil.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv(confine.ROOTS_VARIABLE, str(code))
    monkeypatch.delitem(sys.modules, "evil", raising=False)


@pytest.mark.parametrize(("function", "message"), [
    ("evil:system", "is a builtin_function_or_method, not a function or an nn.Module class"),
    ("evil:main", "installed package of this server"),  # re-exported from Python's own library
    ("evil:missing", "is missing, not a function"),
])
def test_a_loader_that_is_not_a_model_factory_is_refused_before_it_is_called(function, message, tmp_path,
                                                                             monkeypatch) -> None:
    _importable_evil(tmp_path, monkeypatch)
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(StoreError, match=message) as refused:
        loading.load_model(_module_card(function), 32, root=store)
    assert "\n" not in str(refused.value) and str(tmp_path) not in str(refused.value)


def test_a_factory_returning_no_model_is_one_line_on_a_server_and_the_command_line(tmp_path, monkeypatch,
                                                                                   cli) -> None:
    _importable_evil(tmp_path, monkeypatch)
    with pytest.raises(StoreError, match=r"evil:text\(\) returned str, not a torch nn.Module"):
        loading.load_model(_module_card("evil:text"), 32, root=tmp_path)
    ran = cli("extract", "--store", tmp_path / "store", "--model", "os:system", "--limit", "4")
    assert ran.returncode == 2 and ran.stderr.strip().count("\n") == 0, ran.stderr
    assert "names a builtin_function_or_method, not a function or an nn.Module class" in ran.stderr


# -- models files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "{a = " * 2000 + "1" + "}" * 2000],
                         ids=["5,000 nested arrays", "2,000 nested inline tables"])
def test_a_deeply_nested_models_file_is_one_message_not_a_recursion_error(value, tmp_path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f'[m]\nmodel = {value}\n')
    with pytest.raises(ValueError, match="nested too deeply to read") as refused:
        cards.read_models_file(path)
    assert len(str(refused.value)) < 300


def test_a_huge_models_file_is_refused_by_size_and_a_long_value_is_cut(tmp_path) -> None:
    huge = tmp_path / "huge.toml"
    huge.write_text('[m]\nmodel = "' + "x" * (20 << 20) + '"\n')  # a 20 MB value
    with pytest.raises(ValueError, match="more than a models file may hold") as refused:
        cards.read_models_file(huge)
    assert len(str(refused.value)) < 300
    long = tmp_path / "long.toml"
    long.write_text('[m]\nmodel = "' + "x" * (1 << 20) + '"\n')  # 1 MB: within the file bound, not a module:function
    with pytest.raises(ValueError, match=r"must look like 'package.module:function', got 'xxx.*\.\.\.\(1,048,578 char") as refused:
        cards.read_models_file(long)
    assert len(str(refused.value)) < 400


def test_the_cycle_check_walks_each_model_once(monkeypatch, tmp_path) -> None:
    """5,000 tables chained by base spun the CPU (the old check was cubic): the lineage walk reads each
    base once, and the models file's check uses it, refusing the chain by its depth in one line."""
    reads = 0

    class Counted(dict):
        def __getitem__(self, key):
            nonlocal reads
            reads += 1
            return super().__getitem__(key)

    chain = Counted({f"m{i}": f"m{i - 1}" if i else None for i in range(5000)})
    depth, cycle = bases.lineage(chain)
    assert cycle is None and depth["m4999"] == 4999 and reads <= 5000
    walked = []
    monkeypatch.setattr(bases, "lineage", lambda named: walked.append(len(named)) or bases_lineage(named))
    path = tmp_path / "chain.toml"
    path.write_text("".join(f'[m{i}]\nmodel = "nets:net"\n' + (f'base = "m{i - 1}"\n' if i else "") for i in range(5000)))
    with pytest.raises(ValueError, match=r"table \[m65\]: key 'base': 65 bases from its root, more than 64"):
        cards.check_lineage(cards.read_models_file(path), [])
    assert walked == [5000]


bases_lineage = bases.lineage


def test_a_robustbench_name_is_checked_as_a_name(tmp_path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[rb]\nrobustbench = "../../../../etc/passwd"\n')
    with pytest.raises(ValueError, match="key 'robustbench': must be a RobustBench model name"):
        cards.read_models_file(path)
    loader = json.dumps({"kind": "robustbench", "name": "../x", "dataset": "cifar10", "threat_model": "corruptions",
                         "model_dir": "models"})
    assert "RobustBench name is not a name" in loading.missing_checkpoint(tmp_path, None, loader)


# -- messages -----------------------------------------------------------------------------------------------

def _folder(root: Path, classes: int) -> Path:
    from testkit.dataset_families import flat_image

    for number in range(classes):
        flat_image(root / f"class{number:02d}" / "a.png", number, (32, 32))
    return root


def _extract_folder(cli, store: Path, folder: Path, checkpoint: Path, *extra: str):
    return cli("extract", "--store", store, "--checkpoints", checkpoint, "--dataset", "imagefolder", "--data-dir",
               folder, "--image-size", "32", "--corruptions", "fog", "--severities", "1", "--device", "cpu", *extra)


@pytest.mark.slow
def test_a_model_with_more_outputs_than_the_folder_has_classes_is_refused_unless_its_classes_are_named(
        checkpoints, cli, tmp_path) -> None:
    """A 9-class folder against a 10-output model was accepted while its predictions could name class 9.
    Now refused in one line naming --model-classes; with the model's classes named, the folder's labels
    are their positions among them and the store records the model's ten classes."""
    folder = _folder(tmp_path / "folder", 9)
    ran = _extract_folder(cli, tmp_path / "refused", folder, checkpoints[0])
    assert ran.returncode == 2 and "has 10 outputs, but dataset imagefolder has 9 classes" in ran.stderr
    assert "--model-classes" in ran.stderr and not (tmp_path / "refused").exists()
    names = [f"class{number:02d}" for number in (9, *range(9))]  # the model's output 0 is class09
    ran = _extract_folder(cli, tmp_path / "store", folder, checkpoints[0], "--model-classes", ",".join(names))
    assert ran.returncode == 0, ran.stderr
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["class_names"] == names
    labels = pq_labels(tmp_path / "store")
    assert labels == sorted(range(1, 10))  # class00..class08 are outputs 1..9
    missing = _extract_folder(cli, tmp_path / "other", folder, checkpoints[0], "--model-classes", "a,b")
    assert missing.returncode == 2 and "has classes the model's outputs do not name: class00" in missing.stderr


def pq_labels(store: Path) -> list[int]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(store / "samples.parquet", columns=["label"]).column("label").to_pylist())


def test_visitors_never_see_torchs_advice_or_a_server_path(tmp_path) -> None:
    """A checkpoint holding a Python object: torch's own error tells the reader to load it with
    weights_only=False (running its code). The refusal says what the file holds, names it relative to
    the store, and carries no advice."""
    store = tmp_path / "store"
    store.mkdir()
    torch.save({"format": checkpoint.FORMAT, "hook": os.system}, store / "evil.pt")
    with pytest.raises(StoreError) as refused:
        loading.load_model({"checkpoint": "evil.pt", "loader": None}, 32, root=store)
    message = str(refused.value)
    assert "weights_only" not in message and str(tmp_path) not in message, message
    assert message.startswith("checkpoint evil.pt is not a readable torch file: it holds Python objects other than "
                              "tensors"), message
    weights = tmp_path / "weights.pt"
    torch.save({"w": os.system}, weights)
    with pytest.raises(ValueError, match="holds Python objects other than tensors") as refused:
        checkpoint.read_state_dict(weights)
    assert "weights_only" not in str(refused.value)


def test_a_server_loads_checkpoints_within_its_own_smaller_budget(checkpoints, tmp_path, monkeypatch) -> None:
    """Attribution keeps up to MODELS_KEPT loaded models: each may take SERVED_MODEL_BUDGET, so together
    they stay within the server's 2 GB; the command line keeps MODEL_BUDGET."""
    from compute import attribution

    assert attribution.MODELS_KEPT * loading.SERVED_MODEL_BUDGET <= 2 << 30
    store = tmp_path / "store"
    store.mkdir()
    (store / "m.pt").write_bytes(checkpoints[0].read_bytes())
    monkeypatch.setattr(loading, "SERVED_MODEL_BUDGET", 1000)
    with pytest.raises(StoreError, match="checkpoint m.pt is 0.0 GB, more than the 0.0 GB a model may take here"):
        loading.load_model({"checkpoint": "m.pt", "loader": None}, 32, root=store)
    assert loading.load_model({"checkpoint": str(store / "m.pt"), "loader": None}, 32) is not None
