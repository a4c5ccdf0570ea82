"""The Docker image without a Docker engine: the Dockerfile's settings are checked as written, then its
entry command runs here exactly as the image would run it (store path, port and listen address swapped
for a read-only copy of a small store, a free port and 127.0.0.1), and a real browser renders pages."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from dashboard.pages import PAGES
from testkit.browser import ROOT, chromium, free_port, serve, visit

pytestmark = pytest.mark.browser

IMAGE_PORT = "8501"
IMAGE_STORE = "/store"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in lines if line and not line.startswith("#")]


def one(name: str) -> str:
    values = [args for instruction, args in instructions() if instruction == name]
    assert len(values) == 1, f"expected one {name}, found {values}"
    return values[0]


def image_env() -> dict[str, str]:
    env = {}
    for instruction, args in instructions():
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def healthcheck_command() -> str:
    return one("HEALTHCHECK").split(" CMD ", 1)[1].strip()


def test_image_is_slim_runs_as_a_non_root_user_and_installs_runtime_dependencies_only() -> None:
    assert re.fullmatch(r"python:3\.11-slim(@sha256:[0-9a-f]+)?", one("FROM"))
    user = one("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert any(instruction == "RUN" and "useradd" in args and user in args for instruction, args in instructions())
    runs = " ".join(args for instruction, args in instructions() if instruction == "RUN")
    assert "requirements.txt" in runs and "requirements-dev" not in runs and "requirements-optional" not in runs
    copied = [args.split()[0] for instruction, args in instructions() if instruction == "COPY"]
    assert sorted(copied) == [".streamlit/", "analysis/", "compute/", "dashboard/", "requirements.txt", "store/"]


def test_image_exposes_8501_and_its_health_check_asks_streamlit() -> None:
    assert one("EXPOSE").split() == [IMAGE_PORT]
    command = healthcheck_command()
    assert f"http://127.0.0.1:{IMAGE_PORT}/_stcore/health" in command
    assert re.search(r"--timeout=\d+s", one("HEALTHCHECK"))


def entry_command() -> list[str]:
    command = json.loads(one("CMD"))
    assert command[:3] == ["python", "-m", "dashboard.serve"]  # `streamlit run dashboard/app.py`, warmed
    options = command[3:command.index("--")]
    settings = dict(zip(options[::2], options[1::2], strict=True))
    assert settings["--server.port"] == IMAGE_PORT and settings["--server.address"] == "0.0.0.0"
    assert settings["--server.headless"] == "true" and settings["--browser.gatherUsageStats"] == "false"
    assert one("WORKDIR") == "/app"  # the config Streamlit reads: /app/.streamlit/config.toml (no Deploy)
    assert command[command.index("--") + 1:] == ["--store", IMAGE_STORE]
    return command


def test_entry_command_is_a_valid_streamlit_command() -> None:
    """Streamlit's own command-line parser accepts it: known options, values of the right types."""
    from streamlit.web import cli

    command = entry_command()
    context = cli.main.commands["run"].make_context("run", ["dashboard/app.py", *command[3:]])
    assert context.params["target"] == "dashboard/app.py" and (ROOT / "dashboard" / "app.py").is_file()
    assert context.params["server_port"] == int(IMAGE_PORT) and context.params["server_headless"] is True
    assert context.params["args"] == ("--store", IMAGE_STORE)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def read_only_store(tmp_path_factory, synthetic_store) -> Path:
    built = synthetic_store(num_models=3, num_samples=40, corruptions=("gaussian_noise", "contrast"), severities=(1, 3))
    store = tmp_path_factory.mktemp("mounted") / "store"
    shutil.copytree(built, store)
    for path in [store, *store.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))  # chmod -R a-w
    yield store
    for path in [store, *store.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_entry_command_serves_pages_from_a_read_only_store(read_only_store) -> None:
    port = free_port()
    swap = {IMAGE_STORE: str(read_only_store), IMAGE_PORT: str(port), "0.0.0.0": "127.0.0.1",
            "python": sys.executable}
    command = [swap.get(arg, arg) for arg in entry_command()]
    before = snapshot(read_only_store)
    with serve(command, port, env={**os.environ, **image_env()}) as url:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
            assert response.status == 200 and response.read().decode() == "ok"
        check = healthcheck_command().replace(IMAGE_PORT, str(port)).replace("python ", f"{sys.executable} ", 1)
        assert subprocess.run(check, shell=True, check=False).returncode == 0  # the HEALTHCHECK itself
        with chromium() as browser:
            page = browser.new_page()
            for path in ("overview", "matrix"):
                assert visit(page, url, path, timeout=120) > 0
                assert PAGES[path].title in page.content()
            page.close()
    assert snapshot(read_only_store) == before, "serving wrote into the store"


def test_image_serves_in_hosting_mode(monkeypatch) -> None:
    """The image serves the one mounted store; no path box (no --allow-any-store, no env that allows it)."""
    from dashboard import hosting

    command = entry_command()
    monkeypatch.setattr("sys.argv", ["dashboard/app.py", *command[command.index("--") + 1:]])
    for name in (hosting.ENV, hosting.ENV_STORES, hosting.ENV_ANY):
        monkeypatch.delenv(name, raising=False)
    for name, value in image_env().items():
        monkeypatch.setenv(name, value)
    assert hosting.hosting() == hosting.Hosting(store=IMAGE_STORE, allow_any=False)
