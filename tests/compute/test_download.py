"""Downloads are checked against their pins before anything is unpacked, and resume after an interruption.

A local HTTP server on 127.0.0.1 (testkit.datasets.serve_directory: threaded, answers Range requests as
Zenodo does) serves a CIFAR-10 archive in the published layout; the pin table is pointed at that
fixture (its size and md5) for each test, the real pins stay in compute.datasets.download.
"""

from __future__ import annotations

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
