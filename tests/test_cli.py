"""The command line: every command explains itself, and bad input gets an error that names it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from compute.__main__ import build_parser, main
from compute.commands import COMMANDS


def test_top_level_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "compute", "--help"], capture_output=True, text=True,
                            check=True)
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_a_help_that_explains_it(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: python -m compute {command}" in text
    assert len(text.splitlines()) > 5
    assert COMMANDS[command].HELP


def test_unknown_dataset_is_rejected_with_the_choices(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dataset", "mnist", "--out", "x.pt"])
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0", "6", "a", "1-9", ""])
def test_bad_severities_are_rejected(text, capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--out", "x", "--severities", text])
    assert "severities" in capsys.readouterr().err


def test_cifar10_without_a_data_directory_says_what_to_pass(tmp_path, capsys) -> None:
    assert main(["train", "--dataset", "cifar10", "--out", str(tmp_path / "m.pt")]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_extract_names_a_missing_checkpoint(tmp_path, capsys) -> None:
    code = main(["extract", "--store", str(tmp_path / "s"), "--checkpoints", str(tmp_path / "nope.pt")])
    assert code == 2
    assert "nope.pt does not exist" in capsys.readouterr().err


def test_extract_names_an_unknown_corruption(tmp_path, capsys) -> None:
    code = main(["extract", "--store", str(tmp_path / "s"), "--checkpoints", "x.pt", "--corruptions", "rain"])
    assert code == 2
    assert "unknown corruptions ['rain']" in capsys.readouterr().err


def test_index_command_builds_the_sample_index_and_names_a_non_store(tmp_path, capsys) -> None:
    from bench.synthetic import write_store
    from store import sample_index

    root = write_store(tmp_path / "s", num_models=2, num_samples=10, corruptions=("contrast",), severities=(1,))
    assert main(["index", "--store", str(root)]) == 0
    assert sample_index.is_fresh(root)
    assert main(["index", "--store", str(tmp_path / "nothing")]) == 2
    assert "is not a prunescope store" in capsys.readouterr().err


def test_extract_takes_a_users_own_model_by_module_and_function(tmp_path, monkeypatch, capsys) -> None:
    from store import queries
    from store.catalog import Catalog

    (tmp_path / "mynet.py").write_text(
        "from torch import nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
        "                         nn.Linear(4, 10))\n"
        "def broken():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    store = tmp_path / "store"
    args = ["extract", "--store", str(store), "--limit", "12", "--corruptions", "contrast", "--severities", "1",
            "--device", "cpu"]
    assert main([*args, "--model", "mynet:build"]) == 0
    rows = queries.accuracy_matrix(Catalog(store))
    assert set(rows["model_id"]) == {"build"} and rows["samples"].to_list() == [12, 12]
    assert main([*args, "--model", "mynet:broken"]) == 2
    assert "mynet:broken" in capsys.readouterr().err
    assert main(["extract", "--store", str(store)]) == 2
    assert "nothing to extract" in capsys.readouterr().err
