"""prunescope dashboard: `streamlit run dashboard/app.py -- --store DIR` (or PRUNESCOPE_STORE=DIR)."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import compute/ and store/ from a checkout

from dashboard import state  # noqa: E402

VIEWS = Path(__file__).parent / "views"
PAGES = [
    st.Page(VIEWS / "overview.py", title="Overview", url_path="overview"),
    st.Page(VIEWS / "matrix.py", title="Evaluation matrix", url_path="matrix"),
]


def home() -> None:
    """The root URL opens the Overview, so every page keeps its own stable path."""
    st.switch_page(PAGES[0])


st.set_page_config(page_title="prunescope", layout="wide")
navigation = st.navigation([st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"),
                            *PAGES])
state.sidebar()
navigation.run()
