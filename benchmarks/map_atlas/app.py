"""One map page for ``benchmarks.bench_map_atlas``: the points in ``$MAP_POINTS`` (an .npz with x,
y, label, pair) drawn by ``$MAP_DRAWER``: "plotly" (alignscope's Map: Plotly scattergl through
app/charts.py) or "atlas" (Apple's Embedding Atlas Streamlit component)."""
import os

import numpy as np
import pandas as pd
import streamlit as st

points = np.load(os.environ["MAP_POINTS"])
drawer = os.environ["MAP_DRAWER"]
st.title(f"Map ({drawer})")
frame = pd.DataFrame({"x": points["x"], "y": points["y"],
                      "label": np.where(points["label"] == 1, "chosen", "rejected"),
                      "text": [f"#{p + 1}" for p in points["pair"].tolist()]})
if drawer == "plotly":
    from alignscope.app import charts

    figure = charts.scatter_map(frame[["x", "y"]].to_numpy(), frame["label"].to_numpy(), "label",
                                frame["text"].tolist(), title=f"PCA map of {len(frame):,} completions")
    st.plotly_chart(figure, key="map")
else:
    from embedding_atlas.streamlit import embedding_atlas

    embedding_atlas(frame, x="x", y="y", text="text", labels="disabled", key="atlas")
