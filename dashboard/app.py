"""prunescope dashboard: `streamlit run dashboard/app.py -- --store DIR` (one store), `-- --stores ROOT`
(every store directly under ROOT, picked by name), or `-- --allow-any-store` (a path box, for local use);
env PRUNESCOPE_STORE / PRUNESCOPE_STORES / PRUNESCOPE_ALLOW_ANY_STORE=1. See state.hosting.

A page that fails on a damaged store shows which file is damaged and why (state.failed), never a
traceback. With $PRUNESCOPE_TIMING_LOG set, each page view's server time is appended there (bench.load).
"""

import os
import sys
import time
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import compute/ and store/ from a checkout

from dashboard import state  # noqa: E402

VIEWS = Path(__file__).parent / "views"
PAGES = {
    "Study": [
        st.Page(VIEWS / "overview.py", title="Overview", url_path="overview", icon=":material/home:"),
        st.Page(VIEWS / "matrix.py", title="Evaluation matrix", url_path="matrix", icon=":material/grid_on:"),
        st.Page(VIEWS / "similarity.py", title="Geometric similarity", url_path="similarity",
                icon=":material/hub:"),
        st.Page(VIEWS / "predictors.py", title="Robustness predictors", url_path="predictors", icon=":material/insights:"),
    ],
    "Geometry": [
        st.Page(VIEWS / "local.py", title="Local geometry", url_path="local", icon=":material/scatter_plot:"),
        st.Page(VIEWS / "global.py", title="Global geometry", url_path="global", icon=":material/timeline:"),
        st.Page(VIEWS / "embedding.py", title="Embedding", url_path="embedding", icon=":material/bubble_chart:"),
    ],
    "Samples": [
        st.Page(VIEWS / "samples.py", title="Samples", url_path="samples", icon=":material/filter_alt:"),
        st.Page(VIEWS / "sample.py", title="Sample", url_path="sample", icon=":material/image:"),
    ],
}


def home() -> None:
    """The root URL opens the Overview, so every page keeps its own stable path (and `?store=` stays)."""
    st.switch_page(PAGES["Study"][0], query_params=st.query_params.to_dict())


st.set_page_config(page_title="prunescope", layout="wide")
navigation = st.navigation({"": [st.Page(home, title="Home", url_path="home", default=True, visibility="hidden")],
                            **PAGES})
started = time.perf_counter()
state.sidebar()
try:
    navigation.run()
except Exception as error:  # noqa: BLE001 (st.stop/rerun are BaseExceptions and pass through)
    state.failed(error, state.PAGE_VIEWS.get(navigation.url_path, state.VIEWS))
finally:
    if os.environ.get("PRUNESCOPE_TIMING_LOG"):
        with open(os.environ["PRUNESCOPE_TIMING_LOG"], "a") as log:
            log.write(f"{navigation.url_path}\t{time.perf_counter() - started:.4f}\n")
