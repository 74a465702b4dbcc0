"""Map page: every completion (or pair) of the active data set as a point on a 2-D map, coloured by
metadata, label, GMM component, ISA log-likelihood l′ or the current selection; a lasso becomes a named subset."""
from __future__ import annotations

import numpy as np
import streamlit as st

from alignscope.app import analysis, charts, state
from alignscope.embed.projection import display_sample

st.title("Map")
st.caption("Each point is one completion (prompt + response) or one pair, placed so that similar texts "
           "sit close together. Colour it to see where sources, labels and the ISA subset lie; draw a "
           "lasso to keep a region as a subset. Next: the Select page picks a subset by a method.")

data = state.require_data()

encoder, unit = analysis.encoder_controls("map")
embeddings = analysis.require_embeddings(data, encoder, unit, "map")
pair_index, label, source = embeddings.pair_index, embeddings.label, analysis.source_of(embeddings)
n_points = len(embeddings)

# --------------------------------------------------------------------------------- projection
controls = st.columns([2, 2, 2])
method = controls[0].radio("Map", ["PCA", "UMAP"], horizontal=True, key="map_method",
                           help="PCA is instant. UMAP shows local structure better; it runs as a background "
                                "job (about a minute per 10k points on a laptop CPU) and is cached.")
# Every point up to the default cap (a 6,000-point set draws 6,000); more only when asked.
DRAW_STEPS, DRAW_DEFAULT = [5_000, 10_000, 25_000, 50_000, 100_000, 150_000], 50_000
draw_options = [s for s in DRAW_STEPS if s < n_points] + ([n_points] if n_points <= DRAW_STEPS[-1] else [])
max_points = controls[2].select_slider("Points drawn", options=draw_options, value=min(n_points, DRAW_DEFAULT),
                                       key=f"map_max_points_{n_points}",
                                       format_func=lambda v: f"all {v:,}" if v == n_points else f"{v:,}",
                                       help="Drawing is downsampled above this; computation never is.")


@st.cache_data(show_spinner="Computing the PCA map…", max_entries=8)
def _pca(source: str, stamp: float) -> np.ndarray:
    from alignscope.embed.projection import project

    return project(analysis.load_embeddings(source).matrix, "pca")


# ------------------------------------------------------------------------------------ colours
kinds = analysis.column_kinds(data)  # cached per data set
metadata, numeric = kinds["colour"], kinds["numeric"]
colour_options = (["label (chosen / rejected)"] if label is not None else []) + metadata + numeric + \
    ["GMM component", "ISA log-likelihood l′ (high = typical)", "current selection"]
audit_flags = st.session_state.get("alignscope_audit_flags")  # set by the Audit page
if audit_flags and audit_flags["fingerprint"] == data.fingerprint:
    colour_options.append("audit flag")
# Drawn before the projection, so that the box exists in every run, also while UMAP computes and
# the page stops early: a box that disappears and comes back shows its first option in the browser
# while the server keeps the old choice (the chart then disagreed with it). Its options change with
# the audit; the remembered choice re-seeds it.
remembered = st.session_state.get("map_colour_choice")
if st.session_state.get("map_colour") not in colour_options:
    st.session_state["map_colour"] = remembered if remembered in colour_options else colour_options[0]
colour_by = controls[1].selectbox("Colour by", colour_options, key="map_colour")
st.session_state["map_colour_choice"] = colour_by

coords = None
if method == "PCA":
    coords = _pca(source, analysis.embedding_stamp(source))
else:
    store = state.job_store()
    map_jobs = [j for j in store.list_jobs(kind="map", limit=200)
                if j.config.get("embeddings") == str(embeddings.path) and j.config.get("unit") == unit
                and j.config.get("method") == "umap"]
    done = next((j for j in map_jobs if j.status == "succeeded" and (j.run_dir / "map.npy").exists()), None)
    active = next((j for j in map_jobs if j.is_active), None)
    if done is not None:
        coords = np.load(done.run_dir / "map.npy", allow_pickle=False)
    elif active is not None:
        @st.fragment(run_every=1)
        def _umap_progress() -> None:
            job = store.get(active.id)
            st.progress(job.progress, text=f"UMAP… {job.progress:.0%} {job.message or ''}")
            if job.is_terminal:
                st.rerun()
        _umap_progress()
        st.stop()
    else:
        failed = next((j for j in map_jobs if j.status == "failed"), None)
        if failed is not None:
            st.error(f"The last UMAP job failed: {failed.error}")
        st.info(f"UMAP of {n_points:,} points runs as a background job.")
        if st.button("Compute UMAP map", type="primary", key="map_umap"):
            store.submit("map", {"embeddings": str(embeddings.path), "unit": unit, "method": "umap", "seed": 0})
            st.rerun()
        st.stop()

selection_table = None
if colour_by in ("GMM component", "ISA log-likelihood l′ (high = typical)", "current selection"):
    fraction = st.session_state.get("alignscope_fraction", 0.05)  # a share of the pairs (the Select slider)
    k_pairs = max(1, int(round(fraction * data.n_pairs)))
    selection_table = analysis.selection_for_pairs(source, "isa", k_pairs, data.n_pairs, pair_fraction=fraction)
    if colour_by == "current selection":
        # The map draws completions: here their count is the point, beside the pairs they belong to.
        points = "completions" if unit == "completion" else "pairs"
        st.caption(f"Current selection: ISA, {k_pairs:,} of {data.n_pairs:,} pairs ({fraction:.1%}), which is "
                   f"{selection_table.n_selected:,} of {n_points:,} {points} on this map; change it on the Select page.")
kept_rows = None if selection_table is None else np.flatnonzero(selection_table["selected"].to_numpy())
drawn = display_sample(n_points, max_points, keep=kept_rows)

categorical = True
if colour_by.startswith("label"):
    colour = np.where(label[drawn] == 1, "chosen", "rejected")
elif colour_by == "GMM component":
    colour = np.char.add("component ", selection_table["component"].to_numpy()[drawn].astype(str))
elif colour_by == "ISA log-likelihood l′ (high = typical)":
    colour, categorical = selection_table["loglik_scaled"].to_numpy()[drawn], False
elif colour_by == "current selection":
    colour = np.where(selection_table["selected"].to_numpy()[drawn], "kept", "dropped")
elif colour_by == "audit flag":
    colour = audit_flags["issue"][pair_index[drawn]].astype(str)
    st.caption("Each point's pair, by its first audit flag (computed on the Audit page).")
elif colour_by in numeric:
    colour, categorical = data.frame[colour_by].to_numpy()[pair_index[drawn]].astype(float), False
else:
    colour = data.frame[colour_by].astype(str).to_numpy()[pair_index[drawn]]

hover = analysis.map_hover_texts(data, source, pair_index, label, drawn)  # cached per sample
title = f"{method} map of {n_points:,} {unit}s ({encoder}), coloured by {colour_by}" + (
    f" — {len(drawn):,} drawn" if len(drawn) < n_points else "")
figure = charts.scatter_map(coords[drawn], colour, colour_by, hover, title=title, categorical=categorical)
event = st.plotly_chart(figure, key="map_chart", on_select="rerun", selection_mode=("lasso", "box"))
if len(drawn) > 20_000:
    st.caption("Hover text gets shorter as more points are drawn (pair numbers only near 100k+), so the "
               "map stays responsive; draw fewer points, or lasso some, to read them.")

# ------------------------------------------------------------------------------ lasso subset
points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
    getattr(getattr(event, "selection", None), "points", []) or []
if points:
    # Point indices are per trace; a categorical map has one trace per colour value.
    values = np.asarray(colour).astype(str)
    trace_rows = {i: drawn[values == trace.name] if categorical else drawn for i, trace in enumerate(figure.data)}
    picked = sorted({int(trace_rows[p["curve_number"]][p["point_index"]]) for p in points})
    picked_pairs = np.unique(pair_index[picked])
    st.success(f"Lasso: {len(picked):,} points from {len(picked_pairs):,} pairs.")
    name = st.text_input("Name this subset", value="lasso-subset", key="map_subset_name")
    if st.button("Keep as the active selection", key="map_keep"):
        import pandas as pd

        from alignscope.select.selection import Selection

        table = pd.DataFrame({"index": np.arange(data.n_pairs),
                              "selected": np.isin(np.arange(data.n_pairs), picked_pairs)})
        table = Selection.from_frame(table, {"method": "manual", "unit": "pair", "name": name,
                                             "k": int(len(picked_pairs)), "encoder": encoder}, data.fingerprint)
        path = analysis.save_active_selection(data, table, name)
        st.success(f"Saved {len(picked_pairs):,} pairs as '{name}'; export it on the Select page or train on "
                   f"it on the Train page. ({path.name})")
else:
    st.caption("Tip: choose the lasso or box tool in the chart's toolbar and draw around points to keep them.")
