"""Overview: the study (dataset, models, methods, sparsities) and accuracy vs sparsity per method."""

import streamlit as st

from dashboard import charts, state

st.title("Overview")
catalog = state.open_catalog()
if catalog is not None:
    manifest = catalog.manifest
    models = state.models(catalog)
    st.caption(f"Store `{catalog.root}` · dataset **{manifest['dataset']}** · {manifest['num_samples']} test "
               f"samples · {manifest['num_classes']} classes · {len(manifest['corruptions'])} corruptions")
    if models.is_empty():
        st.info("This store has no models yet. Add some with `python -m compute extract --store "
                f"{catalog.root} --checkpoints ...`.")
    else:
        columns = st.columns(3)
        columns[0].metric("models", models.height)
        columns[1].metric("methods", models["method"].n_unique())
        columns[2].metric("best clean accuracy", f"{models['clean_accuracy'].max():.3f}")
        st.altair_chart(charts.accuracy_vs_sparsity(models), width="stretch")
        st.dataframe(models.drop("hparams", "checkpoint"), hide_index=True)
