"""Sample: one test image clean and under every corruption, what every model makes of it, and which of
its pixels drive the selected model's geometry (occlusion attribution)."""

import polars as pl
import streamlit as st

from analysis import queries
from compute.attribution import METRICS, UNITS, patch_and_stride
from compute.loading import missing_checkpoint
from dashboard import attribution, data, figures, guard, images, linking, sidebar
from dashboard.charts.common import setting_order
from dashboard.charts.sample import attribution_maps, sample_matrix
from dashboard.text import code, downloads, escape, public, unpaired_note
from store import layout

st.title("Sample")
catalog = data.open_catalog()
selection = sidebar.selection()
manifest = catalog.manifest
requested = linking.int_param("sample")
if requested is not None and str(requested) != st.session_state.get("sample_in_url"):  # a link or a typed URL
    st.session_state["sample"] = requested
if st.session_state.get("sample", 0) not in range(manifest["num_samples"]):
    st.session_state["sample"] = 0  # from another store: start again at the first sample
sample_id = int(st.number_input("Sample id", 0, manifest["num_samples"] - 1, key="sample",
                                help="also `?sample=ID` in the URL; the Samples page opens samples here"))
st.query_params["sample"] = st.session_state["sample_in_url"] = str(sample_id)
severity = selection.severity or max(manifest["severities"])
rows = data.query(queries.sample_rows, catalog, sample_id, severity)
if rows.is_empty():
    st.info("No predictions for this sample yet.")
    st.stop()
label = int(rows["label"][0])
st.markdown(f"Class **{code(manifest['class_names'][label])}** (label {label}) · model {code(selection.model)} · "
            f"{selection.setting}")

TILE = 128  # the smallest an image is shown (pixels); larger images at their native size


def shown_width(image) -> int:
    return max(TILE, int(image.shape[1]))


picture, table = st.columns([1, 3])
image = images.sample_image(catalog, sample_id, selection.corruption, selection.severity)
if isinstance(image, str):  # the pixels the models saw cannot be had: say why, show nothing else
    picture.warning(escape(public(image)))
    image = None
else:
    width = max(192, int(image.shape[1]))
    images.show(picture, images.enlarged(image, width), caption=f"#{sample_id}, {selection.setting}", width=width)
unpaired = unpaired_note(manifest)
with table:
    columns = setting_order(manifest["corruptions"], [severity])
    linking.chart(figures.spec(sample_matrix, rows, columns), key="sample_chart", stretch=False)
    st.caption(f"Severity {severity} (the sidebar's); click a cell to select that model and setting. "
               f"{public(unpaired)}")
with st.expander("Per-model table"):
    st.dataframe(rows, hide_index=True)
    downloads(rows, f"sample-{sample_id}")

st.subheader("Occlusion attribution")
models = data.query(queries.models, catalog).filter(pl.col("model_id") == selection.model)
checkpoint = models["checkpoint"][0] if models.height else None
loader = models["loader"][0] if models.height else None  # how the model is loaded (compute.loading)
problem = ("No image to occlude: the pixels the model saw cannot be shown (above)." if image is None
           else missing_checkpoint(catalog.root, checkpoint, loader))
patch, stride = patch_and_stride(manifest["image_size"])
if problem:
    st.info(escape(public(problem)))
elif st.toggle(f"Compute for {code(selection.model)} on {selection.setting} ({patch}×{patch}-pixel patch, "
               f"stride {stride}, on the CPU)", key="attribution"):
    maps = attribution.panel(str(catalog.root), checkpoint, image, label,
                             (sample_id, selection.corruption, selection.severity), guard.visitor(), "attribution",
                             loader=loader)
    if maps is not None:
        linking.chart(figures.spec(attribution_maps, image, {m: maps[m] for m in METRICS}, UNITS), stretch=False)
        original = maps["original"]
        st.caption(f"Unoccluded: angle to true class {original['angle_true']:.1f}°, feature norm "
                   f"{original['feature_norm']:.3f}, margin {original['margin']:.3f}. Red: covering the pixel "
                   "raises the metric; blue: lowers it.")

st.subheader("Under every corruption")
if st.toggle("Show the image under every corruption and severity, as the models saw it (read from the files "
             "extraction read, or regenerated on the CPU with the recorded seed; the first time takes a few seconds)",
             key="corruption_grid", persist_state="session"):
    settings = [(layout.CLEAN, 0), *((c, s) for c in manifest["corruptions"] for s in manifest["severities"])]
    with st.spinner("making the corrupted images..."):
        tiles = {(c, s): images.sample_image(catalog, sample_id, c, s) for c, s in settings}
    shown = {key: tile for key, tile in tiles.items() if not isinstance(tile, str)}
    if shown:
        width = max(shown_width(tile) for tile in shown.values())
        images.show(st, [images.enlarged(tile, width) for tile in shown.values()],
                    caption=["clean" if c == layout.CLEAN else f"{c} s{s}" for c, s in shown], width=width)
    if unpaired:
        st.caption(public(unpaired))
    for reason in dict.fromkeys(tile for tile in tiles.values() if isinstance(tile, str)):
        st.warning(escape(public(reason)))
