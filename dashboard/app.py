"""prunescope dashboard: `streamlit run dashboard/app.py -- --store DIR` (or PRUNESCOPE_STORE=DIR)."""

import sys
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
    """The root URL opens the Overview, so every page keeps its own stable path."""
    st.switch_page(PAGES["Study"][0])


st.set_page_config(page_title="prunescope", layout="wide")
navigation = st.navigation({"": [st.Page(home, title="Home", url_path="home", default=True, visibility="hidden")],
                            **PAGES})
state.sidebar()
navigation.run()
