"""Which stores the operator serves and which one this session shows: one store (`--store DIR`), every
store directly under a root (`--stores ROOT`, picked by name), or, for local use only, any directory the
visitor types (`--allow-any-store`). A visitor can never name a path in the first two modes, and sees a
hosted store by its name, never by its path on the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from compute import loading
from store import confine, layout

ENV = "PRUNESCOPE_STORE"
ENV_STORES = "PRUNESCOPE_STORES"
ENV_ANY = "PRUNESCOPE_ALLOW_ANY_STORE"
DEFAULT_STORE = "data/demo"


@dataclass(frozen=True)
class Hosting:
    """What the operator serves: one store (`--store DIR`), every store directly under a root (`--stores
    ROOT`, picked by name), or, for local use only, any directory the visitor types (`--allow-any-store`).
    A visitor can never name a path in the first two modes."""

    store: str | None = None
    stores: str | None = None
    allow_any: bool = False

    def names(self) -> list[str]:
        """The stores under the root: real directories (not symlinks) holding a manifest.json file."""
        root = Path(self.stores or "")
        try:
            entries = sorted(root.iterdir()) if self.stores else []
        except OSError:
            return []
        return [entry.name for entry in entries
                if not entry.is_symlink() and entry.is_dir() and (entry / layout.MANIFEST).is_file()
                and not (entry / layout.MANIFEST).is_symlink()]


def hosting() -> Hosting:
    """The mode the operator chose: flags after `--` on the streamlit command line, else $PRUNESCOPE_STORES
    / $PRUNESCOPE_STORE (and $PRUNESCOPE_ALLOW_ANY_STORE=1), else the one store data/demo. `--allow-root
    DIR` (repeatable) adds to the allowed roots of store.confine, `--allow-module NAME` to the installed modules
    a card's loader may name (compute.loading)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # `--sto` is not `--store`
    parser.add_argument("--store")
    parser.add_argument("--stores")
    parser.add_argument("--allow-any-store", action="store_true")
    parser.add_argument("--allow-root", action="append", default=[])
    parser.add_argument("--allow-module", action="append", default=[])
    known, _ = parser.parse_known_args(sys.argv[1:])
    confine.allow_roots(known.allow_root)  # where outside checkpoints and --corrupted-dir files may be read
    loading.allow_modules(known.allow_module)  # installed packages a card's module:function may name
    allow_any = known.allow_any_store or os.environ.get(ENV_ANY, "") in ("1", "true", "yes")
    if known.stores or known.store:
        return Hosting(store=known.store, stores=None if known.store else known.stores, allow_any=allow_any)
    if os.environ.get(ENV_STORES) and not os.environ.get(ENV):
        return Hosting(stores=os.environ[ENV_STORES], allow_any=allow_any)
    return Hosting(store=os.environ.get(ENV) or DEFAULT_STORE, allow_any=allow_any)


def default_store() -> str:
    """The store a session starts on: the operator's one store, else the first store under the root."""
    mode = hosting()
    if mode.stores is not None:
        names = mode.names()
        return str(Path(mode.stores) / names[0]) if names else mode.stores
    return mode.store or DEFAULT_STORE


def store_path() -> str:
    """The directory of the store this session shows: the operator's store, the store picked by name under
    the root, or (with --allow-any-store) the directory typed in the sidebar."""
    mode = hosting()
    if mode.allow_any:
        if "store" not in st.session_state:
            st.session_state["store"] = default_store()
        return st.session_state["store"]
    if mode.stores is not None:
        names = mode.names()
        name = st.session_state.get("store_name")
        return str(Path(mode.stores) / name) if name in names else default_store()
    return default_store()


def store_label() -> str:
    """The open store as a visitor may see it: its name when hosted (no server path), the path otherwise."""
    return store_path() if hosting().allow_any else Path(store_path()).name
