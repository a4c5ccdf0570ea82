"""Fetch a published dataset archive once: download with a progress bar, verify its md5, unpack it.

The download itself is torchvision's `download_url` (follows redirects, shows a progress bar, keeps an
archive already present with the right checksum and fetches it again otherwise). Unpacking is done
here rather than with torchvision's `extract_archive` for two reasons: members are extracted with
tarfile's "data" filter, so an archive from an overridden URL cannot write outside the data directory;
and the folder is unpacked under a temporary name and renamed when complete, so an interrupted run
never leaves a half-written folder that a later run would mistake for the dataset.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlparse

from compute.datasets.base import DataError


def archive_name(url: str) -> str:
    """The file name an archive is saved under: the last part of the URL path (query string dropped)."""
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise DataError(f"cannot tell the archive's file name from the URL {url!r}")
    return name


def download_archive(url: str, md5: str | None, directory: Path) -> Path:
    """Download `url` into `directory` and check its md5; an already present file with that md5 is kept.

    `md5=None` (a source whose checksum is not published with it) skips the check.

    A file whose checksum does not match is deleted (it is useless, and the published archives are
    gigabytes) and reported with both checksums.
    """
    # Imported here: torchvision pulls in torch, seconds that reading files already on disk should not pay.
    from torchvision.datasets.utils import calculate_md5, download_url

    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / archive_name(url)
    try:
        download_url(url, str(directory), archive.name, md5=md5)
    except RuntimeError as error:
        if not archive.is_file():
            raise DataError(f"could not download {url} to {archive}: {error}") from error
        found = calculate_md5(archive)
        archive.unlink()
        raise DataError(
            f"checksum mismatch for {archive} downloaded from {url}: expected md5 {md5}, got {found}; "
            "the file was deleted"
        ) from error
    except OSError as error:  # urllib's URLError and HTTPError are OSErrors
        if isinstance(error, HTTPError):
            error.close()  # it holds the open response; release the connection now, not at garbage collection
        raise DataError(f"could not download {url} to {archive}: {error}") from error
    return archive


def extract_folder(archive: Path, folder: str, directory: Path) -> Path:
    """Unpack `archive` (tar, or zip by its .zip suffix), which must hold `folder/`, into
    `directory/folder`, atomically; return that path. The archive is deleted once its folder is in place.
    """
    extract_folders(archive, (folder,), directory)
    return directory / folder


def extract_folders(archive: Path, folders: tuple[str, ...], directory: Path) -> None:
    """Unpack `archive`, which must hold every one of `folders/`, and move each into `directory` (each move
    atomic; a folder already there is kept). The archive is deleted afterwards."""
    staging = Path(tempfile.mkdtemp(prefix=f".{folders[0]}.partial-", dir=directory))
    try:
        try:
            if archive.suffix == ".zip":
                with zipfile.ZipFile(archive) as packed:  # extractall drops absolute paths and '..' parts
                    packed.extractall(staging)
            else:
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
            kind = "zip" if archive.suffix == ".zip" else "tar"
            raise DataError(f"{archive} is not a readable {kind} archive: {error}") from error
        missing = [folder for folder in folders if not (staging / folder).is_dir()]
        if missing:
            found = sorted(path.name for path in staging.iterdir())
            raise DataError(f"{archive} should contain the folder {'/, '.join(missing)}/; it contains: {found}")
        for folder in folders:
            if not (directory / folder).exists():
                (staging / folder).rename(directory / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()


def fetch_folder(url: str, md5: str | None, directory: Path, folder: str) -> Path:
    """`directory/folder`, downloaded and unpacked from the archive at `url` unless it is already there."""
    target = directory / folder
    if target.is_dir():
        return target
    archive = download_archive(url, md5, directory)
    return extract_folder(archive, folder, directory)
