"""The dashboard's pages, listed once: what the app navigates, every link between pages, the browser test and
the page benchmarks read this registry.

Plain data, importable without Streamlit (testkit and bench read it to drive a real browser). A page is
one script under dashboard/views/; adding one means writing the script and adding one line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """One page of the app: how the sidebar and its heading name it, where it is served, what runs it, and
    which of the store's views it reads (the files searched for damage when it fails, see data.failed)."""

    title: str  # the sidebar entry and the page's heading (st.title), the same text
    url_path: str  # served at /<url_path>; stable, links and bookmarks use it
    script: str  # the page's script, relative to dashboard/ (as st.page_link and st.switch_page take it)
    section: str  # the sidebar group it is listed under
    icon: str
    reads: tuple[str, ...]  # store views (store.vocabulary.VIEWS) the page's queries read


_STUDY = ("samples", "models", "predictions")

# url path -> page, in the sidebar's order (the first is where the root URL leads).
PAGES: dict[str, Page] = {page.url_path: page for page in (
    Page("Overview", "overview", "views/overview.py", "Study", ":material/home:", _STUDY),
    Page("Evaluation matrix", "matrix", "views/matrix.py", "Study", ":material/grid_on:", ("models", "predictions")),
    Page("Geometric similarity", "similarity", "views/similarity.py", "Study", ":material/hub:",
         ("models", "predictions", "embeddings")),
    Page("Robustness predictors", "predictors", "views/predictors.py", "Study", ":material/insights:",
         ("models", "predictions")),
    Page("Layers", "layers", "views/layers.py", "Study", ":material/layers:", ("models", "layers")),
    Page("Local geometry", "local", "views/local.py", "Geometry", ":material/scatter_plot:", _STUDY),
    Page("Global geometry", "global", "views/global.py", "Geometry", ":material/timeline:", _STUDY),
    Page("Embedding", "embedding", "views/embedding.py", "Geometry", ":material/bubble_chart:",
         ("samples", "models", "embeddings")),
    Page("Samples", "samples", "views/samples.py", "Samples", ":material/filter_alt:", _STUDY),
    Page("Sample", "sample", "views/sample.py", "Samples", ":material/image:", _STUDY),
)}
