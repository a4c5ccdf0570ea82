"""Old import path of store.layout (names, paths and schemas of the store format); kept as a re-export."""

from store.layout import *  # noqa: F403
