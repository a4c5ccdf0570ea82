"""Local geometry: per class, angle to the true class against feature length for the selected model, and
how a second model moves each sample."""

import streamlit as st

from analysis import queries
from dashboard import classes, data, figures, linking, sidebar
from dashboard.charts.common import BINS, DEGREES, MAX_MARKS
from dashboard.charts.geometry import class_density, class_scatter
from dashboard.text import code, downloads

st.title("Local geometry")
catalog = data.open_catalog()
selection = sidebar.selection()
labels = classes.class_filter(catalog)
if labels == []:
    st.info("Pick at least one class above (type part of its name to find it).")
    st.stop()
large = catalog.manifest["num_samples"] > MAX_MARKS
st.markdown(f"Model **{code(selection.model)}** on **{selection.setting}**"
            + (f", compared with **{code(selection.compare)}**" if selection.compare else ""))
angle, norm = f"angle to true class ({DEGREES})", "feature norm ||x|| (feature units)"

if large:
    bins = data.query(queries.setting_bins, catalog, selection.model, selection.corruption,
                       selection.severity, BINS, labels)
    figure = figures.spec(class_density, bins, x_title=angle, y_title=norm,
                          title="Angle vs feature length per class (samples per cell)")
    result = bins
else:
    points = data.query(queries.setting_points, catalog, selection.model, selection.corruption,
                         selection.severity, labels)
    figure = figures.spec(class_scatter, points, x="angle_true", y="feature_norm", x_title=angle, y_title=norm,
                          title="Angle vs feature length per class (red: misclassified)")
    result = points
if result.is_empty():
    st.info("No predictions for this model in this setting: pick another in the sidebar.")
    st.stop()
linking.chart(figure, key=None if large else "local_chart", stretch=False)
st.caption("Click a point to select its sample." if not large else
           f"Over {MAX_MARKS:,} samples: binned in DuckDB; the tooltip gives each cell's accuracy.")
linking.sample_link()
downloads(result, "local-geometry")

if not selection.compare or selection.compare == selection.model:
    st.info("Pick a model under **Compare with** in the sidebar to see how it moves each sample.")
    st.stop()
st.subheader(f"From {code(selection.compare)} (A) to {code(selection.model)} (B)")
delta_angle = f"Δ angle to true class, B − A ({DEGREES})"
delta_norm = "Δ feature norm, B − A (feature units)"
if large:
    deltas = data.query(queries.pair_delta_bins, catalog, selection.compare, selection.model,
                         selection.corruption, selection.severity, BINS, labels)
    figure = figures.spec(class_density, deltas, x_title=delta_angle, y_title=delta_norm,
                          title="Per-sample change per class (samples per cell)")
else:
    deltas = data.query(queries.pair_deltas, catalog, selection.compare, selection.model, selection.corruption,
                         selection.severity, labels)
    figure = figures.spec(class_scatter, deltas, x="delta_angle_true", y="delta_feature_norm",
                          x_title=delta_angle, y_title=delta_norm, color="change", color_title="correct in",
                          title="Per-sample change per class (right of 0: B's angle is larger)")
linking.chart(figure, key=None if large else "local_delta_chart", stretch=False)
downloads(deltas, "local-deltas")
