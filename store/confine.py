"""Nothing outside the store is read: symlinks and special files are refused, and outside paths resolve
only inside allowed roots.

A store is a directory of plain files. A symbolic link anywhere in it could point a reader at another
store's rows or at any file of the server, and a FIFO, socket or device blocks (or never ends) the reader
that opens it, so every reader refuses a store that holds one (`refuse_not_plain`, naming each entry) and
reads only paths that stay inside the store (`inside`). Every file a reader opens, in a store or under an
allowed root, is first checked to be a regular file (`regular`).

A store may point outside itself: checkpoints and weights in models.parquet, the user's `--corrupted-dir`
files in the provenance. Paths are recorded relative to the store when the file lies inside it (the demo
and `compute study` keep checkpoints in `<store>/checkpoints/`), and as absolute paths otherwise
(`record_path`). `resolve_allowed` turns a recorded path back into a file, but only inside the store or
under an allowed root: the one operator-level list of directories outside stores that may be read
(`--allow-root DIR`, repeatable, on `compute verify` and on the dashboard; or, for every command,
$PRUNESCOPE_ALLOW_ROOTS, directories separated by `os.pathsep`). Its refusal names what was recorded
(the setting), never the path, and never says whether an outside path exists: the decision is made on
the path's text before anything outside is touched.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from store.layout import StoreError

ROOTS_VARIABLE = "PRUNESCOPE_ALLOW_ROOTS"
SHOWN = 5  # links named in one message; the rest are counted


def _kind(mode: int) -> str:
    """What a directory entry that is neither a regular file nor a directory is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def not_plain(root: str | Path, skip: Sequence[str] = ()) -> list[tuple[Path, str]]:
    """Every entry under `root` that is neither a regular file nor a directory (symbolic links, FIFOs,
    sockets, devices; links never followed), with what it is, sorted; the folders `skip` directly under
    `root` are not walked (their reader checks them when it reads them).

    os.scandir reports links and directories from the directory entries themselves, so a store of thousands
    of partitions costs one listing per directory and a stat only for the rare entry of another kind.
    """
    top = os.fspath(root)
    found, pending = [], [top]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except (NotADirectoryError, FileNotFoundError):
            continue
        for entry in entries:
            if entry.is_symlink():
                found.append((Path(entry.path), _kind(stat.S_IFLNK)))
            elif entry.is_dir(follow_symlinks=False):
                if not (folder == top and entry.name in skip):
                    pending.append(entry.path)
            elif not entry.is_file(follow_symlinks=False):
                found.append((Path(entry.path), _kind(entry.stat(follow_symlinks=False).st_mode)))
    return sorted(found)


def refuse_not_plain(root: str | Path, skip: Sequence[str] = (), relative_to: str | Path | None = None) -> None:
    """StoreError naming the symbolic links and special files under `root` (but not in its folders `skip`),
    when there are any; named relative to `relative_to` (the store holding `root`), else to `root`."""
    found = not_plain(root, skip)
    store = root if relative_to is None else relative_to
    if found:  # the store named once, each entry relative to it
        named = ", ".join(f"{_relative(path, store)} ({kind})" for path, kind in found[:SHOWN])
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise StoreError(f"{store}: {named}{more}: a store is read only from its own regular files (replace each "
                         "by a copy of the file it stands for)")


def _relative(path: str | Path, root: str | Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def regular(path: str | Path) -> Path:
    """`path`, once it is a regular file (not a link, FIFO, socket or device, which block or mislead the
    reader that opens them); StoreError naming the path and what it is otherwise. Every reader of store
    metadata, images, provenance files and checkpoints calls it before opening."""
    try:
        mode = os.stat(path, follow_symlinks=False).st_mode
    except FileNotFoundError:
        raise StoreError(f"{path}: missing") from None
    except OSError as error:
        raise StoreError(f"{path}: cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise StoreError(f"{path}: {_kind(mode) if not stat.S_ISDIR(mode) else 'a directory'}, not a regular "
                         "file; refused")
    return Path(path)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def inside(root: str | Path, path: str | Path) -> Path:
    """`path` (relative to `root`, or absolute) as an absolute path inside `root`; StoreError otherwise.

    Refused: a path whose text leaves `root` (`..`, another absolute path), or one that passes through a
    symbolic link inside `root`. Nothing outside `root` is touched to decide.
    """
    base = os.path.realpath(root)
    candidate = os.path.normpath(os.path.join(base, os.fspath(path)))
    if not _within(candidate, base):
        raise StoreError(f"{path}: outside the store {root}; refused")
    current = Path(base)
    for part in Path(candidate).relative_to(base).parts:
        current = current / part
        if current.is_symlink():
            raise StoreError(f"{root}: {_relative(current, base)}: a symbolic link; refused")
    return Path(candidate)


def declared_roots(roots: Sequence[str | Path] | None = None) -> list[str]:
    """The allowed roots: `roots` when given, else $PRUNESCOPE_ALLOW_ROOTS (resolved)."""
    if roots is None:
        roots = [part for part in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if part]
    return [os.path.realpath(root) for root in roots]


def allow_roots(roots: Sequence[str | Path]) -> None:
    """Add `--allow-root` directories to this process's allowed roots (after those of the environment)."""
    current = [part for part in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if part]
    added = [os.path.realpath(root) for root in roots if os.path.realpath(root) not in current]
    if added:
        os.environ[ROOTS_VARIABLE] = os.pathsep.join(current + added)


def record_path(store: str | Path, path: str | Path | None) -> str | None:
    """How a store records an outside file: relative to the store when inside it, else absolute."""
    if path is None or path == "":
        return None
    resolved = os.path.realpath(path)
    base = os.path.realpath(store)
    return Path(os.path.relpath(resolved, base)).as_posix() if _within(resolved, base) else resolved


def resolve_allowed(store: str | Path, recorded: str, what: str = "checkpoint",
                    roots: Sequence[str | Path] | None = None) -> Path:
    """The file a store entry names (`what`: "checkpoint", "weights", "corrupted file", ...), confined to
    the store and the allowed roots.

    A relative entry is relative to the store; an absolute one must lie inside the store or under an
    allowed root (see `declared_roots`). StoreError when the path leaves them or passes through a symbolic
    link; the message names `what`, not the path, and does not say whether an outside path exists. The file
    itself may be missing: callers check `is_file()` on the returned path (it is inside a root, so saying
    so reveals nothing outside).
    """
    text = os.fspath(recorded)
    candidates = [os.path.realpath(store), *(declared_roots(roots) if os.path.isabs(text) else [])]
    for root in candidates:
        candidate = os.path.normpath(os.path.join(root, text))
        if _within(candidate, root):
            try:
                path = inside(root, candidate)
            except StoreError:
                continue
            if _within(os.path.realpath(path), root):
                return path
    raise StoreError(f"the {what} recorded in this store lies outside the store and the allowed roots "
                     f"(--allow-root DIR or ${ROOTS_VARIABLE}); refused")
