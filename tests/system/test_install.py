"""`pip install -e .` from a fresh clone into a fresh venv (nothing downloaded: the dependencies are the test
venv's own, the build runs without isolation), then the README's notebook snippet and the `prunescope`
command run from a folder outside the checkout, so they import only what the install provides."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from testkit.study import write_study

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def fresh_clone(target: Path) -> Path:
    """The checkout's tracked files as they are now (a clone without the history)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
    return target


def readme_snippet(readme: Path) -> str:
    blocks = readme.read_text().split("```python\n")[1:]
    return next(block.split("```")[0] for block in blocks if 'open_study("data/demo")' in block)


def test_pip_install_e_gives_the_notebook_api_and_the_command(tmp_path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    fresh_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies (and setuptools for the build): the test venv's packages, not prunescope itself.
    (Path(fresh_site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "-e", clone], check=True, capture_output=True)

    store = write_study(tmp_path / "store", models=[("small_cnn-dense-s0", "dense", 0.0, 0),
                                                    ("small_cnn-ft-90-s0", "ft", 0.9, 0)],
                        settings=[("clean", 0), ("fog", 5)])
    snippet = readme_snippet(clone / "README.md").replace("data/demo", str(store))
    lines = snippet.strip().splitlines()
    program = "\n".join([*lines[:-1], f"answer = {lines[-1]}", "import analysis",
                         "print(analysis.__file__)", "print(answer.height, answer.columns[0])"])
    elsewhere = tmp_path / "notebook"
    elsewhere.mkdir()
    ran = subprocess.run([python, "-c", program], cwd=elsewhere, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    where, answer = ran.stdout.splitlines()[-2:]
    assert Path(where).is_relative_to(clone)
    count, first_column = answer.split()
    assert int(count) > 0 and first_column == "sample_id"

    command = subprocess.run([venv / "bin" / "prunescope", "report", "--store", store, "--format", "csv"],
                             cwd=elsewhere, capture_output=True, text=True)
    module = subprocess.run([python, "-m", "compute", "report", "--store", store, "--format", "csv"],
                            cwd=elsewhere, capture_output=True, text=True)
    assert command.returncode == 0, command.stderr
    assert command.stdout == module.stdout and command.stdout.startswith("row,method")
