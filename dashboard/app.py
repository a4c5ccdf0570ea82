"""prunescope dashboard: `streamlit run dashboard/app.py -- --store DIR` (one store), `-- --stores ROOT`
(every store directly under ROOT, picked by name), or `-- --allow-any-store` (a path box, for local use);
env PRUNESCOPE_STORE / PRUNESCOPE_STORES / PRUNESCOPE_ALLOW_ANY_STORE=1. See dashboard.hosting.

The pages are those of dashboard.pages. A page that fails on a damaged store shows which file is damaged
and why (data.failed), never a traceback; Streamlit's own error details are off too and the toolbar is a
viewer's (no Deploy), from .streamlit/config.toml, which Streamlit reads before the first session. With
$PRUNESCOPE_TIMING_LOG set, each page view's server time is appended there (bench.load).
"""

import os
import sys
import time
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import compute/ and store/ from a checkout

from dashboard import data  # noqa: E402
from dashboard.pages import PAGES  # noqa: E402
from dashboard.sidebar import sidebar  # noqa: E402
from store import vocabulary  # noqa: E402

HERE = Path(__file__).parent
SECTIONS: dict[str, list[st.Page]] = {}
for page in PAGES.values():
    SECTIONS.setdefault(page.section, []).append(
        st.Page(HERE / page.script, title=page.title, url_path=page.url_path, icon=page.icon))


def home() -> None:
    """The root URL opens the first page, so every page keeps its own stable path (and `?store=` stays)."""
    st.switch_page(next(iter(SECTIONS.values()))[0], query_params=st.query_params.to_dict())


st.set_page_config(page_title="prunescope", layout="wide")
navigation = st.navigation({"": [st.Page(home, title="Home", url_path="home", default=True, visibility="hidden")],
                            **SECTIONS})
started = time.perf_counter()
if navigation.url_path:  # not the root, which only switches to the first page (the address read there)
    sidebar()
try:
    navigation.run()
except Exception as error:  # noqa: BLE001 (st.stop/rerun are BaseExceptions and pass through)
    data.failed(error, PAGES[navigation.url_path].reads if navigation.url_path in PAGES else vocabulary.CATALOG_VIEWS)
finally:
    if os.environ.get("PRUNESCOPE_TIMING_LOG"):
        with open(os.environ["PRUNESCOPE_TIMING_LOG"], "a") as log:
            log.write(f"{navigation.url_path}\t{time.perf_counter() - started:.4f}\n")
