"""Samples: find fragile or robust samples with a preset or a free filter; pick one to open it."""

import functools

import polars as pl
import streamlit as st

from analysis import presets
from analysis.filters import FILTER_EXAMPLES, FILTER_HELP, FilterError, compile_filter
from dashboard import classes, data, guard, images, linking, sidebar
from dashboard.pages import PAGES
from dashboard.text import code, downloads, public, unpaired_note
from store import layout, vocabulary
from store.catalog import QueryError, QueryTimeout

PAGE_SIZE = 25
LIMIT = presets.FILTER_ROWS  # filter rows fetched at most; the count says how many match


def open_row(rows: pl.DataFrame) -> None:
    """on_select of the table: the row's sample (and, for prediction rows, its model and setting) becomes
    the selection, and the Sample page opens."""
    picked = st.session_state["samples_table"].selection.rows
    if picked:
        linking.apply_point(rows.row(picked[0], named=True))
        st.session_state["open_sample"] = True


st.title("Samples")
catalog = data.open_catalog()
selection = sidebar.selection()
severity = selection.severity or max(catalog.manifest["severities"])
QUESTIONS = {  # preset -> (what it asks, with the sidebar selection filled in; its arguments)
    "pruning_fragile": (f"right for a model's reference, wrong for the model ({selection.setting})",
                        {"k": 1, "corruption": selection.corruption, "severity": selection.severity}),
    "corruption_fragile": (f"{code(selection.model)} right on clean images, wrong under "
                           f"{selection.corruption} up to severity {severity}",
                           {"corruption": selection.corruption, "max_severity": severity,
                            "model_id": selection.model}),
    "robust": (f"right for every model under every corruption up to severity {severity}",
               {"max_severity": severity}),
    "flipped_by_pruning": (f"right for {code(selection.compare)}, wrong for {code(selection.model)} "
                           f"({selection.setting})",
                           {"model_a": selection.compare, "model_b": selection.model,
                            "corruption": selection.corruption, "severity": selection.severity}),
    "pruning_identified_exemplars": (f"whose modal prediction over a group's seeds differs from its reference "
                                     f"group's ({selection.setting}; one seed: flipped by pruning)",
                                     {"corruption": selection.corruption, "severity": selection.severity}),
}

# The address names the question (`?preset=NAME` or `?filter=TEXT`), so a link opens the same samples.
asked, typed = linking.from_address("preset"), linking.from_address("filter")
if asked in QUESTIONS:
    st.session_state["samples_source"], st.session_state["samples_preset"] = "preset", asked
if typed is not None:
    st.session_state["samples_source"], st.session_state["samples_filter"] = "filter", typed
linking.warn([f"preset {asked[:80]!r}" if asked is not None and asked not in QUESTIONS else None], st)
if st.session_state.get("samples_source") not in ("preset", "filter"):
    st.session_state["samples_source"] = "preset"
source = st.segmented_control("Find samples by", ["preset", "filter"], key="samples_source",
                              persist_state="session", required=True)
try:
    if source == "preset":
        name = st.selectbox("Preset", list(QUESTIONS), key="samples_preset", persist_state="session",
                            format_func=lambda preset: f"{preset.replace('_', ' ')}: {presets.PRESETS[preset][1]}")
        linking.remember({"preset": name, "filter": None})
        question, arguments = QUESTIONS[name]
        st.caption(f"Samples {question}. The sidebar selection fills in the model and setting.")
        if name in ("corruption_fragile", "robust") and unpaired_note(catalog.manifest):
            st.caption(public(unpaired_note(catalog.manifest)))
        if name == "corruption_fragile" and selection.corruption == layout.CLEAN:
            st.info("Pick a corruption in the sidebar: this preset asks what a corruption breaks.")
            st.stop()
        if name == "flipped_by_pruning" and not selection.compare:
            st.info("Pick a model under **Compare with** in the sidebar: this preset compares two models.")
            st.stop()
        with guard.one_filter_at_a_time():
            result = data.query(presets.PRESETS[name][0], catalog, **arguments)
        matches = result.height
    else:
        text = st.text_input("Filter", key="samples_filter", persist_state="session",
                             placeholder=FILTER_EXAMPLES[0], help="a condition on the columns below")
        scoped = st.checkbox(f"only {code(selection.model)} on {selection.setting}", value=True,
                             key="samples_scoped", persist_state="session",
                             help="the sidebar's model and setting; much faster on a large study")
        linking.remember({"filter": text, "preset": None})
        with st.expander("Filter language"):
            st.code(FILTER_HELP, language=None)
        if not text.strip():
            st.info(f"Type a condition, e.g. `{FILTER_EXAMPLES[0]}`.")
            st.stop()
        compile_filter(text)  # errors name what the user typed, before the scope is added
        if scoped:
            text = (f"model_id = {vocabulary.sql_literal(selection.model)} and corruption = "
                    f"{vocabulary.sql_literal(selection.corruption)} and severity = {selection.severity} and ({text})")
        with guard.one_filter_at_a_time():
            result = data.query(presets.filter_rows, catalog, text, LIMIT)  # reads only as far as the page needs
            try:  # a short page is every match; else count them all (a whole large study may pass the time limit)
                matches = result.height if result.height < LIMIT else data.query(presets.count_rows, catalog, text)
            except QueryTimeout:
                matches = None
except (FilterError, QueryTimeout) as error:
    st.error(str(error))
    st.stop()
except QueryError as error:  # a damaged file names itself (verify); other errors shown as they are
    data.failed(error, PAGES["samples"].reads)
    st.stop()
except ValueError as error:
    st.error(str(error))
    st.stop()

if result.is_empty():
    needs_reference = source == "preset" and name in ("pruning_fragile", "pruning_identified_exemplars")
    if needs_reference and not data.has_reference(catalog):
        st.info(data.NO_REFERENCE)
    else:
        st.info("No sample matches.")
    st.stop()
result = classes.with_class_names(result, catalog.manifest["class_names"])  # names beside class indices
pages = (result.height + PAGE_SIZE - 1) // PAGE_SIZE
shown_note = f" (the first {result.height:,} are listed)" if matches is None or matches > result.height else ""
left, right = st.columns([3, 1])
counted = (f"**{matches:,}**" if matches is not None else
           f"At least **{result.height:,}** (counting them all stopped at its time limit; narrow the filter "
           "for the exact count)")
left.markdown(f"{counted} matching {'rows' if source == 'filter' else 'samples'}{shown_note}. "
              "Select a row to open the sample.")
page = right.number_input("Page", 1, max(pages, 1), 1, key="samples_page") if pages > 1 else 1
rows = result.slice((page - 1) * PAGE_SIZE, PAGE_SIZE)
st.dataframe(rows, hide_index=True, on_select=functools.partial(open_row, rows), selection_mode="single-row",
             key="samples_table")
downloads(result, f"samples-{source}")
if st.session_state.pop("open_sample", False):
    st.switch_page(PAGES["sample"].script, query_params={"sample": str(st.session_state["sample"])})

clean = images.clean_images(catalog)
if clean is not None:
    shown = rows.unique("sample_id", maintain_order=True).select("sample_id", "label_name")
    images.show(st, [images.enlarged(clean[i]) for i in shown["sample_id"]],
                caption=[f"#{i} {name}" for i, name in shown.iter_rows()], width=96)
