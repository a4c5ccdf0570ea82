"""prunescope dashboard: `streamlit run dashboard/app.py -- --store DIR` (or PRUNESCOPE_STORE=DIR)."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import compute/ and store/ from a checkout

from dashboard import state  # noqa: E402

st.set_page_config(page_title="prunescope", layout="wide")
PAGES = Path(__file__).parent / "pages"
navigation = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", url_path="overview", default=True),
    st.Page(PAGES / "matrix.py", title="Evaluation matrix", url_path="matrix"),
])
state.sidebar()
navigation.run()
