"""Global geometry: parallel coordinates over the angles to every class, feature norm, margin and loss,
coloured by correctness, as lines or as density."""

import streamlit as st

from analysis import queries
from dashboard import classes, data, figures, linking, sidebar
from dashboard.charts.geometry import parallel_density, parallel_lines
from dashboard.text import downloads

TOP_K = 5  # closest wrong classes shown instead of every class on studies with many classes

st.title("Global geometry")
catalog = data.open_catalog()
selection = sidebar.selection()
names = catalog.manifest["class_names"]
left, middle, nearest, right = st.columns([1, 1, 1, 2])
mode = left.segmented_control("Show", ["lines", "density"], default="lines", key="global_mode",
                              persist_state="session", required=True,
                              help="lines: one polyline per sample (a fixed subset); density: every sample, "
                                   "binned, line width and opacity by count")
lines = middle.number_input("Lines at most", 50, 2000, 300, step=50, key="global_lines", persist_state="session",
                            disabled=mode != "lines")
chosen = right.selectbox("Class", ["all classes", *names], key="global_class", persist_state="session",
                         help="the samples of one class only; type part of its name to find it")
labels = None if chosen == "all classes" else [names.index(chosen)]
top_k = None if len(names) <= classes.MAX_CLASS_PANELS and catalog.keeps_all_classes else TOP_K
if top_k:
    most = max(1, min(len(names) - 1, catalog.per_class.top_k - 1))  # wrong classes every kept row has
    top_k = int(nearest.number_input("Nearest wrong classes", 1, most, min(TOP_K, most), key="global_top_k",
                                     persist_state="session",
                                     help="axes after the true class: each sample's closest wrong classes"))
    st.caption(f"{len(names)} classes are too many axes for parallel coordinates: each sample shows its angle to "
               f"the true class and to its {top_k} closest wrong classes instead (hover a line for their names).")
axes = queries.parallel_axes(catalog, top_k)
where = f"{selection.model} on {selection.setting}"
if mode == "density":
    frame = data.query(queries.parallel_density, catalog, selection.model, selection.corruption,
                        selection.severity, top_k=top_k, labels=labels)
    figure = figures.spec(parallel_density, frame, axes, f"Density of every sample's geometry: {where}")
else:
    frame = data.query(queries.parallel_lines, catalog, selection.model, selection.corruption,
                        selection.severity, top_k=top_k, lines=int(lines), labels=labels)
    figure = figures.spec(parallel_lines, frame, axes, f"Geometry of each sample: {where}")
if frame.is_empty():
    st.info("No predictions for this model in this setting: pick another in the sidebar.")
    st.stop()
linking.chart(figure)
st.caption("Angles (degrees) share one scale; feature norm, margin and loss each span their own range, "
           "written at the ends of each axis. Blue: correct, red: misclassified.")
downloads(frame, f"global-{mode}")
