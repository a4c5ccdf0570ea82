"""Fetch a published dataset archive once: download (resuming), check it against its pin, unpack it.

Every archive prunescope downloads is pinned in `ARCHIVES` (byte size, md5, and sha256 where one is
public; sources: ../shared/reference/datasets-files.md, "Facts to pin"). The order of work, and why:

1. Download into `<name>.part`, never more bytes than the archive's pinned size (or, where no size is
   pinned, its documented `ceiling`): a server (a mirror, or anyone in the middle of a plain-HTTP
   download) that announces more, or sends more with or without a Content-Length, is refused at that
   byte, the partial file renamed `<name>.rejected`, so it cannot fill the disk. Resume an interrupted
   download with an HTTP Range request. A
   connection that drops is not an error to Python's http.client (a short read returns less, silently),
   so the bytes received are compared with the length the server announced; short means interrupted:
   the `.part` file stays for the next run to resume, and the run stops with one error.
2. Check the complete file against its pin (size first, then md5 and sha256 in one pass) before
   anything is unpacked. A short or wrong file is renamed `<name>.rejected` (kept aside for a look, never
   unpacked; the next run downloads again) and the run stops with one error naming the file, the
   expected and the found size and hash.
3. Unpack under a temporary folder; each wanted folder gets a record of what was unpacked into it
   (`UNPACKED`: the archive, its md5, every file with its size) and is renamed into place, so a folder
   appears complete or not at all. A folder with a record whose files are not all there is reported,
   never used. The archive is deleted afterwards.

Members are extracted with tarfile's "data" filter (zip: `extractall` drops absolute paths and `..`),
so an archive from a mirror cannot write outside the data directory.

`PRUNESCOPE_MIRROR=URL` fetches every archive from `URL/<archive name>` instead of its published URL (an
offline copy, or a local server in tests); the pins still apply.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from compute.datasets.base import DataError
from store.digests import file_digests

MIRROR_VARIABLE = "PRUNESCOPE_MIRROR"
UNPACKED = ".prunescope-unpacked.json"  # the record in each folder unpacked here
CHUNK = 1 << 20
GB = 1 << 30
DEFAULT_CEILING = 32 * GB  # an archive with neither a pinned size nor a ceiling of its own (none today)


@dataclass(frozen=True)
class Archive:
    """A published archive: where it is, and what it must be. `size` is None where no source gives it."""

    url: str
    md5: str
    size: int | None = None
    sha256: str | None = None
    ceiling: int | None = None  # where no size is pinned: the most bytes a download of it may write

    @property
    def name(self) -> str:
        return archive_name(self.url)

    @property
    def limit(self) -> int:
        """The most bytes a download of this archive writes: its pinned size, else its ceiling."""
        return self.size if self.size is not None else self.ceiling or DEFAULT_CEILING


def archive_name(url: str) -> str:
    """The file name an archive is saved under: the last part of the URL path (query string dropped)."""
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise DataError(f"cannot tell the archive's file name from the URL {url!r}")
    return name


_ZENODO_TINY_C = "https://zenodo.org/records/8206060/files"
_ZENODO_IMAGENET_C = "https://zenodo.org/records/2235448/files"
# Keyed by archive name. Every value is from datasets-files.md ("Facts to pin"), which names its sources:
# sizes from the MILA git-annex keys and TFDS url_checksums, md5s from the dataset pages, torchvision and
# two independent loader libraries (torch-uncertainty, rai-toolbox / pytorch-ood), sha256 from TFDS.
ARCHIVES: dict[str, Archive] = {archive.name: archive for archive in (
    Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
            170_498_071, "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    Archive("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar", "56bf5dcef84df0e2308c6dcbcbbd8499",
            2_918_471_680, "c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7"),
    Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
            169_001_437, "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),
    Archive("https://zenodo.org/records/3555552/files/CIFAR-100-C.tar", "11f0ed0f1191edbf9fa23466ae6021d3",
            2_918_473_216, "30ee6543a1bfd049fa33834b7c1ada301e7064b7fbe8fc38340eb8b62ced4b33"),
    Archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de", 248_100_043),
    # The fixed Tiny-ImageNet-C (record 8206060; the original record 2536630 has a defective frost/ and no
    # published checksum). No source gives these two files' byte sizes; the ceilings bound what 15 (and 4)
    # corruptions x 5 severities x 10,000 64-px JPEGs of a few KB, each with its 1 KB of tar headers, take.
    Archive(f"{_ZENODO_TINY_C}/Tiny-ImageNet-C.tar", "f9c9a9dbdc11469f0b850190f7ad8be1", ceiling=4 * GB),
    Archive(f"{_ZENODO_TINY_C}/Tiny-ImageNet-C-extra.tar", "0db0588d243cf403ef93449ec52b70eb", ceiling=2 * GB),
    # ImageNet-C, record 2235448: about 21 / 7 / 12 / 7 / 15 GB; no source gives the exact byte sizes, so
    # each ceiling is its published size plus a quarter.
    Archive(f"{_ZENODO_IMAGENET_C}/noise.tar", "e80562d7f6c3f8834afb1ecf27252745", ceiling=27 * GB),
    Archive(f"{_ZENODO_IMAGENET_C}/blur.tar", "2d8e81fdd8e07fef67b9334fa635e45c", ceiling=9 * GB),
    Archive(f"{_ZENODO_IMAGENET_C}/weather.tar", "33ffea4db4d93fe4a428c40a6ce0c25d", ceiling=15 * GB),
    Archive(f"{_ZENODO_IMAGENET_C}/digital.tar", "89157860d7b10d5797849337ca2e5c03", ceiling=9 * GB),
    Archive(f"{_ZENODO_IMAGENET_C}/extra.tar", "d492dfba5fc162d8ec2c3cd8ee672984", ceiling=19 * GB),
)}


def source_url(archive: Archive) -> str:
    """Where `archive` is fetched from: its published URL, or `$PRUNESCOPE_MIRROR/<name>`."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    return f"{mirror.rstrip('/')}/{archive.name}" if mirror else archive.url


def fetch(name: str, directory: Path) -> Path:
    """`directory/<name>`, the archive `ARCHIVES[name]`, downloaded (or resumed) and checked against its pin.

    A file already there is checked too (it may be an old or foreign copy); DataError on any failure."""
    archive = ARCHIVES[name]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if not path.is_file():
        part = directory / f"{name}.part"
        _download(source_url(archive), part, archive.limit)
        part.rename(path)
    check_archive(path, archive)
    return path


def _download(url: str, part: Path, limit: int) -> None:
    """Download `url` into `part`, continuing after the bytes `part` already holds (HTTP Range), writing at
    most `limit` bytes in all: a response that announces more, or sends more, is refused (DataError) and
    `part` renamed `<name>.rejected`."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "prunescope", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urlopen(Request(url, headers=headers), timeout=60)  # noqa: S310 (http(s) URLs of ARCHIVES)
    except HTTPError as error:
        error.close()  # it holds the open response; release the connection now, not at garbage collection
        if error.code == 416 and offset:  # nothing after `offset`: the file is complete (the check will tell)
            return
        raise DataError(f"could not download {url} to {part}: {error}") from error
    except (URLError, OSError, HTTPException) as error:
        raise DataError(f"could not download {url} to {part}: {error}") from error
    with response:
        if offset and response.status != 206:  # the server ignored the range: start again
            offset = 0
        length = response.headers.get("Content-Length")
        try:
            total = offset + int(length) if length is not None else None
        except ValueError:
            total = None  # not a number: the byte count below still bounds what is written
        if total is not None and total > limit:
            _refuse_oversized(url, part, limit, f"announces {total:,} bytes")
        received, over = offset, False
        with part.open("ab" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
                     file=sys.stderr, leave=False) as bar:
            try:
                while chunk := response.read(min(CHUNK, limit - received + 1)):
                    if received + len(chunk) > limit:
                        over = True
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, HTTPException):
                pass  # a dropped connection: reported below with the byte counts
        if over:
            _refuse_oversized(url, part, limit, f"sent more than {limit:,} bytes (stopped at {received:,})")
    if total is not None and received < total:
        raise DataError(f"download of {url} stopped at {received:,} of {total:,} bytes; {part} is kept: run the "
                        "command again to resume it")


def _refuse_oversized(url: str, part: Path, limit: int, what: str) -> None:
    rejected = part.with_name(part.name.removesuffix(".part") + ".rejected")
    if part.is_file():
        part.replace(rejected)
    raise DataError(f"download of {url} refused: the server {what}, more than the {limit:,} bytes pinned for "
                    f"{part.name.removesuffix('.part')}" + (f"; kept aside as {rejected}" if rejected.is_file() else ""))


def digests(path: Path, sha256: bool = False, bar: tqdm | None = None) -> tuple[str, str | None]:
    """(md5, sha256 or None) of a file, read once in chunks, counted on `bar` (a progress bar over many
    files), else on a progress bar of its own on stderr."""
    if bar is None:
        with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"checking {path.name}",
                  file=sys.stderr, leave=False) as own:
            return digests(path, sha256, own)
    found = file_digests(path, ("md5", "sha256") if sha256 else ("md5",), progress=bar.update)
    return found[0], found[1] if sha256 else None


def check_archive(path: Path, archive: Archive) -> None:
    """Size, then md5 (and sha256 when pinned); a mismatch renames `path` to `<name>.rejected` and raises."""
    size = path.stat().st_size
    problem = None
    if archive.size is not None and size != archive.size:
        problem = f"expected {archive.size:,} bytes, found {size:,}"
    else:
        md5, sha256 = digests(path, sha256=archive.sha256 is not None)
        if md5 != archive.md5:
            problem = f"expected md5 {archive.md5}, found {md5} ({size:,} bytes)"
        elif archive.sha256 is not None and sha256 != archive.sha256:
            problem = f"expected sha256 {archive.sha256}, found {sha256}"
    if problem:
        rejected = path.with_name(f"{path.name}.rejected")
        path.replace(rejected)
        raise DataError(f"{path} is not the published {archive.name}: {problem}; kept aside as {rejected} "
                        "(not unpacked; the next run downloads it again)")


def check_unpacked(folder: Path) -> None:
    """A folder unpacked here (it holds the record UNPACKED) must still hold every file it recorded.

    Checked once per process and record (extraction asks once per severity; ImageNet-C's folders hold
    250,000 files)."""
    record_path = folder / UNPACKED
    if record_path.is_file():  # else unpacked by the user: `python -m compute verify-data` checks it
        _check_record(record_path, record_path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _check_record(record_path: Path, _mtime_ns: int) -> None:
    folder = record_path.parent
    try:
        record = json.loads(record_path.read_text())
        files = dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{record_path} is not a readable unpacking record ({error}); delete {folder} to "
                        "unpack it again") from error
    missing = [name for name, size in files.items()
               if not (folder / name).is_file() or (folder / name).stat().st_size != size]
    if missing:
        raise DataError(f"{folder} is incomplete: {len(missing)} of the {len(files)} files unpacked from "
                        f"{record.get('archive')} are missing or changed (e.g. {missing[0]}); delete {folder} to "
                        "unpack it again")


def _locate(staging: Path, folder: str) -> Path | None:
    """`folder` at the archive's top level, or inside its one top-level folder (e.g. Tiny-ImageNet-C/fog)."""
    if (staging / folder).is_dir():
        return staging / folder
    tops = [path for path in staging.iterdir() if path.is_dir()]
    return tops[0] / folder if len(tops) == 1 and (tops[0] / folder).is_dir() else None


def unpack(path: Path, archive: Archive, folders: Sequence[str], directory: Path) -> None:
    """Unpack `path` (tar, or zip by its suffix), which must hold every one of `folders/`, and move each
    into `directory` with its record (each move atomic; a folder already there is kept). The archive is
    deleted afterwards."""
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.partial-", dir=directory))
    try:
        try:
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as packed:
                    packed.extractall(staging)
            else:
                with tarfile.open(path) as tar:
                    tar.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
            kind = "zip" if path.suffix == ".zip" else "tar"
            raise DataError(f"{path} is not a readable {kind} archive: {error}") from error
        found = {folder: _locate(staging, folder) for folder in folders}
        missing = [folder for folder, place in found.items() if place is None]
        if missing:
            listed = sorted(entry.name for entry in staging.iterdir())
            raise DataError(f"{path} should contain the folder {'/, '.join(missing)}/; it contains: {listed}")
        for folder, place in found.items():
            if (directory / folder).exists():
                continue
            files = {str(file.relative_to(place)): file.stat().st_size
                     for file in sorted(place.rglob("*")) if file.is_file()}
            (place / UNPACKED).write_text(json.dumps({"archive": archive.name, "md5": archive.md5, "files": files}))
            place.rename(directory / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    path.unlink()


def fetch_corruption(base: Path, corruption: str, archives: Mapping[str, Sequence[str]], family: str) -> Path:
    """`base`, holding the folder of `corruption`: unpacked there from the archive of `archives` (archive
    name -> the corruption folders it holds) that holds it, unless it is already there."""
    if (base / corruption).is_dir():
        check_unpacked(base / corruption)
        return base
    name = next((name for name, folders in archives.items() if corruption in folders), None)
    if name is None:
        raise DataError(f"no {family} archive holds {corruption!r}; archives: "
                        + "; ".join(f"{name}: {', '.join(folders)}" for name, folders in archives.items()))
    unpack(fetch(name, base), ARCHIVES[name], archives[name], base)
    return base


def fetch_folder(name: str, directory: Path, folder: str) -> Path:
    """`directory/folder`, downloaded and unpacked from archive `name` unless it is already there."""
    target = directory / folder
    if target.is_dir():
        check_unpacked(target)
        return target
    unpack(fetch(name, directory), ARCHIVES[name], (folder,), directory)
    return target
