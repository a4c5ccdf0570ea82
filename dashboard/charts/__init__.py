"""Charts as pure functions: Polars frame in, Altair chart out (testable without Streamlit), one module per
page (overview, matrix, similarity, geometry for the local and global pages, sample, embedding, predictors),
with the method palette (palette) and the labels several pages share (common).

Every chart has a title, axis titles with units, and tooltips. Charts a user can click carry a point
selection whose fields are named like the shared selection (model_id, corruption, severity, sample_id,
model_b; see dashboard.linking.apply_point). Frames reaching a chart are small: anything that could be
large is aggregated in DuckDB first (analysis.queries). Every chart that colours by method takes its
colour channel from palette.method_colour.
"""
