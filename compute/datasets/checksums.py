"""A dataset folder the user already has, checked file by file against the published md5s.

Per-file md5s are public for the CIFAR python files (torchvision's CIFAR10/CIFAR100 constants) and for
every CIFAR-10-C / CIFAR-100-C file (torch-uncertainty and rai-toolbox list the same values); byte sizes
for the CIFAR batch files are the MILA git-annex keys. All from ../shared/reference/datasets-files.md
(sections 1-4). No per-file hashes are published for Tiny-ImageNet(-C) or ImageNet(-C).

`check(folder, pins)` reports missing files, extra files (hidden files, such as the unpacking record of
compute.datasets.download, are not extra; `UNHASHED` names files that ship without a published hash)
and changed files (another size, where pinned, or another md5). md5s are computed streaming with a
progress bar on stderr and cached by (path, size, mtime) in `$XDG_CACHE_HOME/prunescope/file-md5.json`
(default `~/.cache/...`), so checking an unchanged folder again reads no file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from compute.datasets.base import DataError
from compute.datasets.download import digests


@dataclass(frozen=True)
class FilePin:
    md5: str
    size: int | None = None


def _npy_pins(md5s: str) -> dict[str, FilePin]:
    """`name md5` pairs, one per corruption file of a CIFAR-C folder, as `<name>.npy` pins."""
    pairs = (line.split() for line in md5s.strip().splitlines())
    return {f"{name}.npy": FilePin(md5) for name, md5 in pairs}


# Folder name -> file -> pin. Sources: datasets-files.md sections 1 (CIFAR-10), 2 (CIFAR-10-C),
# 3 (CIFAR-100), 4 (CIFAR-100-C).
FOLDERS: dict[str, dict[str, FilePin]] = {
    "cifar-10-batches-py": {
        "data_batch_1": FilePin("c99cafc152244af753f735de768cd75f", 31_035_704),
        "data_batch_2": FilePin("d4bba439e000b95fd0a9bffe97cbabec", 31_035_320),
        "data_batch_3": FilePin("54ebc095f3ab1f0389bbae665268c751", 31_035_999),
        "data_batch_4": FilePin("634d18415352ddfa80567beed471001a", 31_035_696),
        "data_batch_5": FilePin("482c414d41f54cd18b22e5b47cb7c3cb", 31_035_623),
        "test_batch": FilePin("40351d587109b95175f43aff81a1287e", 31_035_526),
        "batches.meta": FilePin("5ff9c542aee3614f3951f8cda6e48888"),
    },
    "CIFAR-10-C": _npy_pins("""
        brightness 0a81ef75e0b523c3383219c330a85d48
        contrast 3c8262171c51307f916c30a3308235a8
        defocus_blur 7d1322666342a0702b1957e92f6254bc
        elastic_transform 9421657c6cd452429cf6ce96cc412b5f
        fog 7b397314b5670f825465fbcd1f6e9ccd
        frost 31f6ab3bce1d9934abfb0cc13656f141
        gaussian_blur c33370155bc9b055fb4a89113d3c559d
        gaussian_noise ecaf8b9a2399ffeda7680934c33405fd
        glass_blur 7361fb4019269e02dbf6925f083e8629
        impulse_noise 2090e01c83519ec51427e65116af6b1a
        jpeg_compression 2b9cc4c864e0193bb64db8d7728f8187
        labels c439b113295ed5254878798ffe28fd54
        motion_blur fffa5f852ff7ad299cfe8a7643f090f4
        pixelate 0f14f7e2db14288304e1de10df16832f
        saturate 1cfae0964219c5102abbb883e538cc56
        shot_noise 3a7239bb118894f013d9bf1984be7f11
        snow bb238de8555123da9c282dea23bd6e55
        spatter 8a5a3903a7f8f65b59501a6093b4311e
        speckle_noise ef00b87611792b00df09c0b0237a1e30
        zoom_blur 6ea8e63f1c5cdee1517533840641641b
    """),
    "cifar-100-python": {
        "train": FilePin("16019d7e3df5f24257cddd939b257f8d", 155_249_918),
        "test": FilePin("f0ef6b0ae62326f3e7ffdfab6717acfc", 31_049_707),
        "meta": FilePin("7973b15100ade9c7d40fb424638fde48"),
    },
    "CIFAR-100-C": _npy_pins("""
        brightness f22d7195aecd6abb541e27fca230c171
        contrast 322bb385f1d05154ee197ca16535f71e
        defocus_blur d923e3d9c585a27f0956e2f2ad832564
        elastic_transform a0792bd6581f6810878be71acedfc65a
        fog 4efc7ebd5e82b028bdbe13048e3ea564
        frost 3a39c6823bdfaa0bf8b12fe7004b8117
        gaussian_blur 5204ba0d557839772ef5a4196a052c3e
        gaussian_noise ecc4d366eac432bdf25c024086f5e97d
        glass_blur 0bf384f38e5ccbf8dd479d9059b913e1
        impulse_noise 3b3c210ddfa0b5cb918ff4537a429fef
        jpeg_compression c851b7f1324e1d2ffddeb76920576d11
        labels bb4026e9ce52996b95f439544568cdb2
        motion_blur 732a7e2e54152ff97c742d4c388c5516
        pixelate 96c00c60f144539e14cffb02ddbd0640
        saturate c0697e9fdd646916a61e9c312c77bf6b
        shot_noise b0a1fa6e1e465a747c1b204b1914048a
        snow 0237be164583af146b7b144e73b43465
        spatter 12ccf41d62564d36e1f6a6ada5022728
        speckle_noise e3f215b1a0f9fd9fd6f0d1cf94a7ce99
        zoom_blur 0204613400c034a81c4830d5df81cb82
    """),
}
# Files the published folders hold without a published hash: neither checked nor extra.
UNHASHED: dict[str, tuple[str, ...]] = {"cifar-10-batches-py": ("readme.html",), "CIFAR-100-C": ("README.txt",)}
# Dataset -> (clean folder, corrupted folder) of the datasets with per-file pins.
DATASETS: dict[str, tuple[str, str]] = {"cifar10": ("cifar-10-batches-py", "CIFAR-10-C"),
                                        "cifar100": ("cifar-100-python", "CIFAR-100-C")}


@dataclass
class Report:
    """What `check` found in one folder."""

    folder: Path
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # "name: expected ..., found ..."

    @property
    def damaged(self) -> bool:
        return bool(self.missing or self.extra or self.changed)

    def lines(self) -> list[str]:
        """One line per problem (`<path>: <what>`), then a summary line."""
        lines = [f"{self.folder / name}: missing" for name in self.missing]
        lines += [f"{self.folder / name}: extra (not a published file)" for name in self.extra]
        lines += [f"{self.folder / change}" for change in self.changed]
        lines.append(f"{self.folder}: {self.checked} file(s) match the published md5s, {len(self.missing)} missing, "
                     f"{len(self.extra)} extra, {len(self.changed)} changed")
        return lines


def find_folder(root: str | os.PathLike[str], folder: str) -> Path:
    """`root/<folder>` when it exists, else `root` (the folder itself); DataError when `root` does not exist."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} does not exist or is not a directory; expected {folder}/ in it, or that folder")
    return root / folder if (root / folder).is_dir() else root


def check(folder: Path, pins: Mapping[str, FilePin], unhashed: tuple[str, ...] = (), hashes: bool = True) -> Report:
    """Compare `folder` with `pins`; with `hashes` False only names and pinned sizes (no file is read)."""
    report = Report(folder)
    present = sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))
    report.extra = [name for name in present if name not in pins and name not in unhashed]
    report.missing = [name for name in pins if not (folder / name).is_file()]
    sized = []
    for name, pin in pins.items():
        path = folder / name
        if not path.is_file():
            continue
        size = path.stat().st_size
        if pin.size is not None and size != pin.size:
            report.changed.append(f"{name}: expected {pin.size:,} bytes, found {size:,}")
        else:
            sized.append(name)
    if not hashes:
        report.checked = len(sized)
        return report
    found = md5s([folder / name for name in sized])
    for name in sized:
        if found[folder / name] == pins[name].md5:
            report.checked += 1
        else:
            report.changed.append(f"{name}: expected md5 {pins[name].md5}, found {found[folder / name]}")
    return report


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prunescope" / "file-md5.json"


def md5s(paths: list[Path]) -> dict[Path, str]:
    """The md5 of each file: from the cache when its path, size and mtime are unchanged, else read (one
    progress bar over all the bytes read, on stderr) and cached."""
    cache_file = cache_path()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    result, todo = {}, []
    for path in paths:
        stat = path.stat()
        entry = cache.get(str(path.resolve()))
        if isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            result[path] = entry[2]
        else:
            todo.append((path, stat))
    if not todo:
        return result
    with tqdm(total=sum(stat.st_size for _, stat in todo), unit="B", unit_scale=True, desc="md5",
              file=sys.stderr, leave=False) as bar:
        for path, stat in todo:
            result[path] = digests(path, bar=bar)[0]
            cache[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns, result[path]]
    try:  # a cache that cannot be written costs time on the next run, never a result
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache_file.parent, delete=False, suffix=".tmp") as out:
            json.dump(cache, out)
        Path(out.name).replace(cache_file)
    except OSError:
        pass
    return result


def check_dataset(dataset: str, data_dir: str | os.PathLike[str] | None,
                  corrupted_dir: str | os.PathLike[str] | None = None, hashes: bool = True) -> list[Report]:
    """The reports of `dataset`'s clean folder under `data_dir` and corrupted folder under `corrupted_dir`
    (either may be None); DataError for a dataset without published per-file hashes."""
    if dataset not in DATASETS:
        raise DataError(f"no per-file hashes are published for dataset {dataset!r}; verify-data knows "
                        f"{', '.join(DATASETS)}")
    if data_dir is None and corrupted_dir is None:
        raise DataError("give --data-dir DIR and/or --corrupted-dir DIR: the folders to check")
    reports = []
    for root, name in zip((data_dir, corrupted_dir), DATASETS[dataset], strict=True):
        if root is not None:
            folder = find_folder(root, name)
            reports.append(check(folder, FOLDERS[name], UNHASHED.get(name, ()), hashes=hashes))
    return reports


def refuse_damaged(dataset: str, data_dir: str | os.PathLike[str] | None,
                   corrupted_dir: str | os.PathLike[str] | None) -> None:
    """DataError naming the first damaged file and the count of problems, when `check_dataset` finds any."""
    problems = [line for report in check_dataset(dataset, data_dir, corrupted_dir) if report.damaged
                for line in report.lines()[:-1]]
    if problems:
        raise DataError(f"{problems[0]}" + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")
                        + f"; `python -m compute verify-data --dataset {dataset}` lists them all")
