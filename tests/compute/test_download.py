"""Downloads are checked against their pins before anything is unpacked, and resume after an interruption.

A local HTTP server on 127.0.0.1 (testkit.datasets.serve_directory: threaded, answers Range requests as
Zenodo does) serves a CIFAR-10 archive in the published layout; the pin table is pointed at that
fixture (its size and md5) for each test, the real pins stay in compute.datasets.download.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from compute.datasets import download
from testkit.datasets import make_cifar10_tarball, pin_archives, serve_directory, write_cifar10

NAME = "cifar-10-python.tar.gz"
pytestmark = pytest.mark.usefixtures("no_proxy_for_localhost")  # local servers, reached directly


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """The published-layout archive, kept out of the served folder (tests serve it whole or damaged)."""
    write_cifar10(tmp_path / "source", n_train=10, n_test=6, seed=3)
    return make_cifar10_tarball(tmp_path / "source", tmp_path / NAME)


def fetch_with_cli(cli, data: Path):
    """A command that downloads CIFAR-10 into `data` before it needs anything else."""
    return cli("extract", "--store", data.parent / "store", "--dataset", "cifar10", "--data-dir", data, "--download")


def the_error(stderr: str) -> str:
    """The one `error:` line, which must also be the last line (progress bars come before it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    return errors[0]


def assert_nothing_unpacked(data: Path) -> None:
    assert not (data / "cifar-10-batches-py").exists()
    assert not [path for path in data.iterdir() if ".partial-" in path.name]


@pytest.mark.parametrize("damage", ["truncated", "wrong hash"])
def test_a_short_or_wrong_archive_is_refused_kept_aside_and_not_unpacked(tmp_path, archive, monkeypatch, cli,
                                                                          damage) -> None:
    served = tmp_path / "served"
    served.mkdir()
    content = bytearray(archive.read_bytes())
    if damage == "truncated":  # a complete response of a short file: tarfile would unpack most of it silently
        content = content[: len(content) // 2]
    else:
        content[len(content) // 2] ^= 0xFF
    (served / NAME).write_bytes(bytes(content))
    data = tmp_path / "data"
    with serve_directory(served) as url:
        pin_archives(monkeypatch, url, archive)
        ran = fetch_with_cli(cli, data)
    line = the_error(ran.stderr)
    assert ran.returncode == 2
    pin = download.ARCHIVES[NAME]
    rejected = data / f"{NAME}.rejected"
    assert str(data / NAME) in line and str(rejected) in line and "not unpacked" in line
    if damage == "truncated":
        assert f"expected {pin.size:,} bytes, found {len(content):,}" in line
    else:
        found = download.digests(rejected)[0]
        assert f"expected md5 {pin.md5}, found {found}" in line and found != pin.md5
    assert rejected.read_bytes() == bytes(content)
    assert_nothing_unpacked(data)
    assert sorted(path.name for path in data.iterdir()) == [rejected.name]


def test_an_interrupted_download_is_refused_then_resumed_and_verified(tmp_path, archive, monkeypatch, cli) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / NAME).write_bytes(archive.read_bytes())
    data = tmp_path / "data"
    requests: list[str] = []
    cut = 5000
    with serve_directory(served, requests, cut={f"/{NAME}": cut}) as url:
        pin_archives(monkeypatch, url, archive)
        first = fetch_with_cli(cli, data)
        line = the_error(first.stderr)
        assert first.returncode == 2
        part = data / f"{NAME}.part"
        assert f"stopped at {cut:,} of {archive.stat().st_size:,} bytes" in line and str(part) in line
        assert part.stat().st_size == cut
        assert_nothing_unpacked(data)
        second = fetch_with_cli(cli, data)  # fails later, for want of a model: the data is there
    assert "nothing to extract" in the_error(second.stderr)
    assert requests == [f"/{NAME}", f"/{NAME} bytes={cut}-"]
    assert sorted(path.name for path in data.iterdir()) == ["cifar-10-batches-py"]
    record = data / "cifar-10-batches-py" / download.UNPACKED
    assert NAME in record.read_text()


def test_a_folder_unpacked_here_that_lost_a_file_is_never_taken_as_complete(tmp_path, archive, monkeypatch) -> None:
    from compute.datasets import cifar10
    from compute.datasets.base import DataError

    served = tmp_path / "served"
    served.mkdir()
    (served / NAME).write_bytes(archive.read_bytes())
    data = tmp_path / "data"
    with serve_directory(served) as url:
        pin_archives(monkeypatch, url, archive)
        download.fetch_folder(NAME, data, "cifar-10-batches-py")
    (data / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="is incomplete: 1 of the 7 files unpacked from cifar-10-python.tar.gz"):
        download.fetch_folder(NAME, data, "cifar-10-batches-py")
    with pytest.raises(DataError, match="data_batch_3"):
        cifar10.load(data, download=True)


@contextlib.contextmanager
def flooding_server(announce: int | None, send: int) -> Iterator[str]:
    """A mirror on 127.0.0.1 that answers every request with `send` bytes (far more than any pin here; a
    bound, so a regression fills no disk), announcing `announce` as Content-Length or, with None, no
    length at all (the body ends when the connection closes)."""

    class Flood(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            if announce is not None:
                self.send_header("Content-Length", str(announce))
            self.end_headers()
            block = b"\0" * 65536
            try:
                for _ in range(send // len(block)):
                    self.wfile.write(block)
            except OSError:
                pass  # the client stopped reading: what a bounded download does

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("announce", [None, 10 ** 12], ids=["no length", "a false length"])
def test_a_mirror_sending_more_than_the_pin_is_stopped_at_the_pinned_size(tmp_path, archive, monkeypatch, cli,
                                                                          announce) -> None:
    """An endless body with no Content-Length, or one announcing 10^12 bytes: nothing past the pinned size
    is written, the download is refused in one line, and nothing is unpacked."""
    data = tmp_path / "data"
    with flooding_server(announce, send=32 << 20) as url:
        pin_archives(monkeypatch, url, archive)
        ran = fetch_with_cli(cli, data)
    line = the_error(ran.stderr)
    assert ran.returncode == 2 and "refused: the server" in line and f"{archive.stat().st_size:,} bytes pinned" in line
    written = sum(path.stat().st_size for path in data.iterdir() if path.is_file())
    assert written <= archive.stat().st_size, written
    assert_nothing_unpacked(data)


def test_an_archive_without_a_pinned_size_has_a_ceiling() -> None:
    """Where no source gives an archive's size, a documented ceiling bounds its download instead."""
    for archive in download.ARCHIVES.values():
        assert archive.limit == (archive.size if archive.size is not None else archive.ceiling), archive.name
        assert archive.limit <= 32 * download.GB
