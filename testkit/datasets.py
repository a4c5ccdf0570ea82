"""Small CIFAR-10 and CIFAR-10-C data in the exact published formats, and a local HTTP server.

For any test that needs these datasets without the real files: the generators write what the published
archives hold (same folder and file names, same pickle and .npy layouts), only with fewer images, and
return what they wrote so a test can compare. `serve_directory` serves archives on 127.0.0.1 for the
download paths; nothing here touches the network.
"""

from __future__ import annotations

import functools
import io
import pickle
import struct
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from compute.datasets import download
from compute.datasets.base import Dataset, ImageSet
from store.digests import file_digest

CIFAR10_CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class _Python2Pickler(pickle._Pickler):
    """Writes every str and bytes as a Python 2 byte string, as cPickle did for the CIFAR-10 batches.

    Built on the pure-Python pickler because only its per-type `dispatch` table can be replaced.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_byte_string(self, obj: bytes | str) -> None:
        raw = obj.encode("ascii") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_byte_string
    dispatch[str] = _save_byte_string


def write_python2_pickle(path: Path, obj: Any) -> None:
    """Pickle `obj` the way the published CIFAR-10 batches were pickled (Python 2, protocol 2).

    Strings are Python 2 byte strings (so the reader needs `encoding="bytes"`, as with the real files) and
    numpy arrays refer to `numpy.core.multiarray`, numpy 1's module name, which the real files contain.
    """
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


def cifar10_batch(images: np.ndarray, labels: np.ndarray, batch_label: str) -> dict[bytes, Any]:
    """A batch dict with the published keys; images uint8 (N, 32, 32, 3) become channel-major rows."""
    return {
        b"batch_label": batch_label.encode("ascii"),
        b"labels": [int(label) for label in labels],
        b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1),
        b"filenames": [f"image_{index:05d}.png".encode("ascii") for index in range(len(images))],
    }


def random_images(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` uint8 (32, 32, 3) images of uniform noise: every pixel's R, G, B almost surely differ."""
    return rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def write_cifar10(directory: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Dataset:
    """Write `directory/cifar-10-batches-py/`, `n_train` images over 5 batches; return what was written."""
    if n_train < 5 or n_test < 1:
        raise ValueError("need n_train >= 5 (one image per training batch at least) and n_test >= 1")
    rng = np.random.default_rng(seed)
    train = ImageSet(random_images(rng, n_train), rng.integers(0, 10, n_train).astype(np.int64))
    test = ImageSet(random_images(rng, n_test), rng.integers(0, 10, n_test).astype(np.int64))
    folder = directory / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    image_parts = np.array_split(train.images, 5)
    label_parts = np.array_split(train.labels, 5)
    for number, (images, labels) in enumerate(zip(image_parts, label_parts, strict=True), start=1):
        batch = cifar10_batch(images, labels, f"training batch {number} of 5")
        write_python2_pickle(folder / f"data_batch_{number}", batch)
    write_python2_pickle(
        folder / "test_batch", cifar10_batch(test.images, test.labels, "testing batch 1 of 1")
    )
    meta = {
        b"num_cases_per_batch": len(image_parts[0]),
        b"label_names": [name.encode("ascii") for name in CIFAR10_CLASS_NAMES],
        b"num_vis": 3072,
    }
    write_python2_pickle(folder / "batches.meta", meta)
    return Dataset(name="cifar10", class_names=CIFAR10_CLASS_NAMES, train=train, test=test)


@dataclass(frozen=True)
class CorruptedFixture:
    """What `write_cifar10c` wrote: per corruption the (5n, 32, 32, 3) file content, and the n labels."""

    directory: Path
    images: dict[str, np.ndarray]
    labels: np.ndarray


def write_cifar10c(
    directory: Path,
    names: tuple[str, ...] = ("gaussian_noise", "fog"),
    n: int = 10,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> CorruptedFixture:
    """Write `<name>.npy` (uint8 (5n, 32, 32, 3), severity-major) and `labels.npy` (uint8, labels x 5).

    Pass `labels` (the test labels of a CIFAR-10 fixture) to keep the two aligned; `n` is then its length.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = rng.integers(0, 10, n)
    labels = np.asarray(labels, dtype=np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    images = {name: random_images(rng, 5 * len(labels)) for name in names}
    for name, content in images.items():
        np.save(directory / f"{name}.npy", content)
    np.save(directory / "labels.npy", np.tile(labels, 5))
    return CorruptedFixture(directory=directory, images=images, labels=labels.astype(np.int64))


def make_cifar10_tarball(data_root: Path, archive: Path) -> Path:
    """Pack `data_root/cifar-10-batches-py/` as the published `cifar-10-python.tar.gz` is packed."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(data_root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def make_cifar10c_tarball(folder: Path, archive: Path) -> Path:
    """Pack the .npy files in `folder` like the published `CIFAR-10-C.tar` (uncompressed, CIFAR-10-C/)."""
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname="CIFAR-10-C")
    return archive


@contextmanager
def serve_directory(directory: Path, requests: list[str] | None = None,
                    cut: dict[str, int] | None = None) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 (a free port) in a thread; yield the base URL.

    Each request's path and Range header are appended to `requests` when given ("/a.tar" or
    "/a.tar bytes=100-"), so a test can see what was fetched. `Range: bytes=N-` is answered with 206 and
    the rest of the file, as Zenodo does. `cut` maps a path to a byte count: its next response announces
    the whole length but the connection is closed after that many bytes (an interrupted download; the
    entry is used up). urllib honours http_proxy: set `no_proxy=127.0.0.1` in tests behind a proxy.
    """
    cuts = dict(cut or {})

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            ranged = self.headers.get("Range")
            if requests is not None:
                requests.append(f"{self.path} {ranged}" if ranged else self.path)
            path = Path(self.translate_path(self.path))
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = int(ranged.removeprefix("bytes=").split("-")[0]) if ranged else 0
            if start >= len(data) and ranged:
                self.send_error(416)
                return
            body = data[start:]
            self.send_response(206 if ranged else 200)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            limit = cuts.pop(self.path, None)
            self.wfile.write(body if limit is None else body[:limit])
            if limit is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: test output stays readable."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def pin_archives(monkeypatch: Any, url: str, *archives: Path) -> None:
    """Point downloads at `url` (PRUNESCOPE_MIRROR) and pin each of `archives` (fixture files named as the
    published ones) to its own size and md5 in compute.datasets.download.ARCHIVES, for this test."""
    monkeypatch.setenv(download.MIRROR_VARIABLE, url)
    for path in archives:
        published = download.ARCHIVES[path.name]
        monkeypatch.setitem(download.ARCHIVES, path.name,
                            download.Archive(published.url, file_digest(path, "md5"), path.stat().st_size))
