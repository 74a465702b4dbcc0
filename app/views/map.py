"""Map page: every completion (or pair) of the active data set on a 2-D map, drawn in the browser
with WebGL (all of them, no sampling) or with Plotly (a sample; where WebGL is missing). Colour by
metadata, label, GMM component, ISA l′, the selection or an audit flag; search the texts; lasso or
box a region; click a point for its pair. The pair view draws each pair as a segment from its
rejected to its chosen completion, coloured by flip probability, probe margin or length gap."""
from __future__ import annotations

import base64
import hashlib

import numpy as np
import streamlit as st

from alignscope.app import analysis, charts, mapview, state
from alignscope.app.components import scattermap
from alignscope.app.components.scattermap.payload import decode_items
from alignscope.audit import word_diff
from alignscope.data.preferences import render_text
from alignscope.embed.projection import display_sample

st.title("Map")
st.caption("Each point is one completion (prompt + response) or one pair, placed so that similar texts "
           "sit close together. Colour it to see where sources, labels and the ISA subset lie; search the "
           "texts; draw a lasso or a box to keep a region as a subset; click a point to read its pair. The "
           "pair view draws each pair as a line from its rejected to its chosen answer. Next: the Select page "
           "picks a subset by a method.")

data = state.require_data()
encoder, unit = analysis.encoder_controls("map")
embeddings = analysis.require_embeddings(data, encoder, unit, "map")
pair_index, label, source = embeddings.pair_index, embeddings.label, analysis.source_of(embeddings)
n_points = len(embeddings)

# -------------------------------------------------------------------------------------- controls
state.keep_choices("map_method", "map_view", "map_plotly", "map_max_points", "map_regions", "map_density")
controls = st.columns([2, 3, 3, 2])
method = controls[0].radio("Map", ["PCA", "UMAP"], horizontal=True, key="map_method",
                           help="PCA is instant. UMAP shows local structure better; it runs as a background "
                                "job and is cached; the PCA map is shown until it is ready.")
view = controls[1].radio("View", ["points", "pairs"], horizontal=True, key="map_view",
                         format_func={"points": "completions", "pairs": "pairs (rejected → chosen)"}.get,
                         help="pairs: each pair is a line from its rejected to its chosen completion, darker at "
                              "the chosen end; colour it by how likely its label is flipped.")
webgl_ok = scattermap.available() and not st.session_state.get(mapview.NO_WEBGL_KEY)
use_plotly = controls[3].toggle("Plotly (sampled)", key="map_plotly", disabled=not webgl_ok,
                                help="The WebGL map draws every point; the Plotly map draws a sample (set below) "
                                     "and is used automatically where the browser has no WebGL.") or not webgl_ok
st.session_state.setdefault("map_regions", True)  # a default through the state (state.keep_choices)
show_regions = controls[3].toggle("Region labels", key="map_regions", disabled=use_plotly,
                                  help="Names each region of the map by the words that set its texts apart "
                                       "(k-means on the map, class-based TF-IDF of a sample of its texts).")
show_density = controls[3].toggle("Density contours", key="map_density", disabled=use_plotly,
                                  help="Lines around the densest parts of the map holding 25 %, 50 % and 75 % of "
                                       "the points: where the mass is when points overlap.")
if not webgl_ok:
    st.caption("The WebGL map is not available here (" + ("this browser reported no WebGL" if scattermap.available()
               else "its built files are missing from this installation") + "): the Plotly map draws a sample.")
if view == "pairs" and (unit != "completion" or label is None):
    st.info("The pair view needs completion-level embeddings (Unit: completion): a pair is a line between "
            "its two completions.")
    view = "points"

options = mapview.point_colour_options(data, label) if view == "points" else mapview.pair_colour_options(data)
colour_key, remembered_key = ("map_colour", "map_colour_choice") if view == "points" else \
    ("map_pair_colour", "map_pair_colour_choice")
remembered = st.session_state.get(remembered_key)
if st.session_state.get(colour_key) not in options:
    st.session_state[colour_key] = remembered if remembered in options else options[0]
colour_by = controls[2].selectbox("Colour by", options, key=colour_key)
st.session_state[remembered_key] = colour_by

# ------------------------------------------------------------------------------------ projection
coords = mapview.pca(source)
coords_key = f"{source}@{analysis.embedding_stamp(source)}:pca"
if method == "UMAP":
    umap, active, failed = mapview.umap_jobs(embeddings)
    if umap is not None and len(umap) == n_points:
        coords, coords_key = umap, f"{source}@{analysis.embedding_stamp(source)}:umap"
    elif active is not None:
        @st.fragment(run_every=1)
        def _umap_progress() -> None:
            job = state.job_store().get(active.id)
            st.progress(job.progress, text=f"UMAP… {job.progress:.0%} {job.message or ''} — the PCA map is shown "
                                           "until it is ready")
            if job.is_terminal:
                st.rerun()
        _umap_progress()
    else:
        if failed is not None:
            st.error(f"The last UMAP job failed: {failed.error}")
        cols = st.columns([3, 1])
        cols[0].info(f"UMAP of {n_points:,} points runs as a background job; the PCA map is shown meanwhile.")
        if cols[1].button("Compute UMAP map", type="primary", key="map_umap"):
            state.job_store().submit("map", {"embeddings": str(embeddings.path), "unit": unit, "method": "umap",
                                             "seed": 0})
            st.rerun()
shown_method = "UMAP" if coords_key.endswith(":umap") else "PCA"

# ------------------------------------------------------------------------------ search, filters
audit_table = analysis.audit_table(data)  # the shared audit cache: the Audit page's, the CLI's or a job's


def _on_search() -> None:
    query = st.session_state.get("map_search", "").strip()
    if query:
        mapview.set_selection(data, mapview.search(data, query), f"search '{query}'")


search_cols = st.columns([3, 2])
query = search_cols[0].text_input("Search the texts", key="map_search", on_change=_on_search,
                                  placeholder="a word or phrase in the prompt or either answer",
                                  help="The pairs whose prompt, chosen or rejected text contains it (any case) "
                                       "become the map's selection.")
if query.strip():
    search_cols[1].caption(f"{len(mapview.search(data, query)):,} pairs contain '{query.strip()}'.")

pairs = np.arange(data.n_pairs)
if view == "pairs":
    if colour_by in mapview.NEEDS_AUDIT and audit_table is None:
        running = analysis.running_audit(data)
        if running is not None:
            analysis.job_progress(running.id, "Auditing every pair")
        else:
            st.info(f"'{colour_by}' comes from the audit of this data set (a cross-fitted flip model, "
                    "near-duplicates, outliers), computed once in the background and cached; the Audit page shows "
                    "its details.")
            if st.button("Run the audit", key="map_audit", type="primary"):
                analysis.start_audit(data)
                st.rerun()
        colour_by = mapview.LENGTH_GAP
        st.caption(f"Coloured by {mapview.LENGTH_GAP} until then.")
    filters = iter(st.columns([2, 2, 2]))
    keep = np.ones(data.n_pairs, dtype=bool)
    if audit_table is not None:
        issue = analysis.first_flags(audit_table)
        flag_values = sorted(set(issue.tolist()))
        chosen_flags = next(filters).multiselect("Audit flags", flag_values, default=flag_values,
                                                 key="map_pair_flags")
        keep &= np.isin(issue, chosen_flags)
    kinds = analysis.column_kinds(data)
    by_column = next(filters)
    column = by_column.selectbox("Filter by column", ["(none)"] + kinds["colour"], key="map_pair_column")
    if column != "(none)":
        values = data.frame[column].astype(str).to_numpy()
        levels = sorted(set(values.tolist()))
        chosen_levels = by_column.multiselect(f"{column} values", levels, default=levels, key=f"map_pair_levels_{column}")
        keep &= np.isin(values, chosen_levels)
    active_selection = analysis.active_selection(data)
    scope = next(filters).radio("Pairs", ["all", "in the active selection", "outside it"], key="map_pair_scope",
                             disabled=active_selection is None, horizontal=False,
                             help="The active selection: the last one kept on the Select, Audit or Map page.")
    if active_selection is not None and scope != "all":
        from alignscope.select.selection import Selection

        in_selection = np.zeros(data.n_pairs, dtype=bool)
        in_selection[Selection.read(active_selection["path"]).pair_selection("any").pairs()] = True
        keep &= in_selection if scope == "in the active selection" else ~in_selection
    pairs = np.flatnonzero(keep)

# ---------------------------------------------------------------------------- the map's state
chosen = mapview.selection(data)
focus = st.session_state.get(mapview.FOCUS_KEY)
focus = focus if focus and focus.get("fingerprint") == data.fingerprint else None
subject = f"{n_points:,} {unit}s" if view == "points" else f"{len(pairs):,} of {data.n_pairs:,} pairs"
st.caption(f"{shown_method} map of {subject} ({encoder}), coloured by {colour_by}.")


def _handle(event: dict, item_pairs: np.ndarray, item_rows: np.ndarray | None, n_items: int) -> None:
    """A new event of the WebGL map: a selection, a click, a clear, or 'no WebGL here'."""
    kind = event.get("kind")
    if kind == "no_webgl":
        st.session_state[mapview.NO_WEBGL_KEY] = str(event.get("reason", ""))
        st.rerun()
    elif kind == "select":
        try:
            items = decode_items(event.get("items", ""), n_items)
        except ValueError as err:
            st.error(f"The map sent a selection this page cannot read: {err}")
            return
        mapview.set_selection(data, item_pairs[items], event.get("how", "lasso"),
                              rows=None if item_rows is None else item_rows[items])
    elif kind == "clear":
        mapview.clear_selection()
    elif kind == "click" and isinstance(event.get("item"), int) and 0 <= event["item"] < n_items:
        item = event["item"]
        st.session_state[mapview.FOCUS_KEY] = {"fingerprint": data.fingerprint, "pair": int(item_pairs[item]),
                                               "row": None if item_rows is None else int(item_rows[item])}


if not use_plotly:
    # ------------------------------------------------------------------------------ WebGL map
    if view == "points":
        scene = mapview.points_scene(coords_key, coords, embeddings)
        colours = mapview.point_colours(colour_by, data, embeddings)
        item_pairs, item_rows = pair_index, np.arange(n_points)
    else:
        colours_for_pairs, order = mapview.pair_colours(
            colour_by, data, audit_table, pairs, hashlib.blake2b(pairs.tobytes(), digest_size=12).hexdigest())
        scene = mapview.pairs_scene(coords_key, coords, source, data.n_pairs, pairs, order, colours_for_pairs.key)
        colours, item_pairs, item_rows = colours_for_pairs, pairs, None
    event = st.session_state.get("map_webgl")
    if isinstance(event, dict) and event.get("scene") == scene.key and \
            (event.get("token"), event.get("n")) != st.session_state.get(mapview.EVENT_KEY):
        st.session_state[mapview.EVENT_KEY] = (event.get("token"), event.get("n"))
        _handle(event, item_pairs, item_rows, scene.n)
        chosen = mapview.selection(data)
        focus = st.session_state.get(mapview.FOCUS_KEY)
    selected = mapview.selected_items(chosen, item_pairs, item_rows)
    focus_items = [] if not focus else (
        np.flatnonzero(item_pairs == focus["pair"]).tolist() if len(item_pairs) < 5_000_000 else [])
    selection_key = "" if not chosen else hashlib.blake2b(selected.tobytes(), digest_size=12).hexdigest()
    region_labels = mapview.regions(coords_key, coords, embeddings, data) if show_regions else None
    scattermap.draw(scene, colours, key="map_webgl", height=620, selected=selected, selection_key=selection_key,
                    focus=focus_items, texts_folder=mapview.text_folder(data),
                    view_key=f"{data.fingerprint}:{coords_key}", regions=region_labels,
                    contours=mapview.contours(coords_key, coords) if show_density else None)
    st.caption("Drag to pan, scroll to zoom, hover a point for its texts, click it to open its pair below; "
               "Lasso/Box (or Shift-drag) select; legend entries hide a category.")
    # While the user reads the map, the Select page's ISA ranking is made in the background.
    analysis.prefetch_isa_ranking(source)
else:
    # ----------------------------------------------------------------------- Plotly fallback
    st.session_state.setdefault("map_max_points", 50_000)
    max_points = st.select_slider("Points drawn", options=[5_000, 10_000, 25_000, 50_000, 100_000, 150_000],
                                  key="map_max_points",
                                  help="The Plotly map draws a sample above this; computation never samples.")
    if view == "pairs":
        st.info("The pair view needs the WebGL map; the Plotly map shows the completions.")
    k = mapview.isa_pairs(data)
    kind, values = mapview.point_values(colour_by if colour_by in mapview.point_colour_options(data, label)
                                        else mapview.point_colour_options(data, label)[0], data, embeddings, k)
    kept_rows = np.flatnonzero(values == "kept") if colour_by == mapview.CURRENT else None
    drawn = display_sample(n_points, max_points, keep=kept_rows)
    hover = analysis.map_hover_texts(data, source, pair_index, label, drawn)  # cached per sample
    title = f"{shown_method} map of {n_points:,} {unit}s ({encoder}), coloured by {colour_by}" + (
        f" — {len(drawn):,} drawn" if len(drawn) < n_points else "")
    figure = charts.scatter_map(coords[drawn], values[drawn], colour_by, hover, title=title,
                                categorical=kind == "categorical")
    plot_event = st.plotly_chart(figure, key="map_chart", on_select="rerun", selection_mode=("lasso", "box"))
    points = (plot_event or {}).get("selection", {}).get("points", []) if isinstance(plot_event, dict) else \
        getattr(getattr(plot_event, "selection", None), "points", []) or []
    if points:
        # Point indices are per trace; a categorical map has one trace per colour value.
        shown = np.asarray(values[drawn]).astype(str)
        trace_rows = {i: drawn[shown == trace.name] if kind == "categorical" else drawn
                      for i, trace in enumerate(figure.data)}
        picked = np.array(sorted({int(trace_rows[p["curve_number"]][p["point_index"]]) for p in points}))
        digest = base64.b64encode(hashlib.blake2b(picked.tobytes(), digest_size=12).digest()).decode()
        if digest != st.session_state.get("map_plotly_lasso"):  # a new lasso, not the one still in the chart
            st.session_state["map_plotly_lasso"] = digest
            mapview.set_selection(data, pair_index[picked], "lasso", rows=picked)
            chosen = mapview.selection(data)
    if len(drawn) > 20_000:
        st.caption("Hover text gets shorter as more points are drawn (pair numbers only near 100k+); lasso "
                   "some points, or draw fewer, to read them.")

# ------------------------------------------------------------------------------ the selection
if chosen:
    n_rows = "" if chosen.get("rows") is None else f"{len(chosen['rows']):,} points from "
    st.success(f"Selected on the map ({chosen['how']}): {n_rows}{len(chosen['pairs']):,} pairs.")
    cols = st.columns([3, 2, 2])
    name = cols[0].text_input("Name this subset", value="map-subset", key="map_subset_name")
    if cols[1].button("Keep as the active selection", key="map_keep", type="primary"):
        path = mapview.keep_selection(data, chosen["pairs"], name, encoder, chosen["how"])
        st.success(f"Saved {len(chosen['pairs']):,} pairs as '{name}'; export it on the Select page or train on "
                   f"it on the Train page. ({path.name})")
    if cols[2].button("Clear the map's selection", key="map_clear"):
        mapview.clear_selection()
        st.rerun()
    # Linked metadata: what the selected region holds; a click on a bar (or the list) narrows it to
    # those values of the column, on the map too.
    groups = analysis.column_kinds(data)["groups"]
    if groups:
        in_selection = np.zeros(data.n_pairs, dtype=bool)
        in_selection[chosen["pairs"]] = True
        breakdown = st.columns([2, 3])
        column = breakdown[0].selectbox("Break the selection down by", groups, key="map_sel_column",
                                        index=groups.index(analysis.default_group(groups)))
        # The column's values as text and each pair's code, coded once per data set (as the chart's).
        texts_of_values, codes, _ = analysis.column_codes(data, column)
        selected_codes = codes[chosen["pairs"]]

        def _narrow(keep_values: list[str]) -> None:
            narrowed = chosen["pairs"][np.isin(texts_of_values, keep_values)[selected_codes]]
            if not len(narrowed):
                st.warning(f"No selected pair has {column} {' or '.join(keep_values)}: the selection stays as it is.")
                return
            rows = chosen.get("rows")
            if rows is not None:
                rows = rows[np.isin(pair_index[rows], narrowed)]
            mapview.set_selection(data, narrowed, f"{chosen['how']}, {column} in {', '.join(keep_values)}", rows=rows)
            st.rerun()

        # Keyed by the selection: a new selection gets a fresh chart, never the last one's clicked bar.
        selection_id = hashlib.blake2b(chosen["pairs"].tobytes(), digest_size=8).hexdigest()
        clicked = breakdown[1].plotly_chart(
            charts.share_bars(analysis.group_shares(data, column, in_selection), column),
            key=f"map_sel_shares_{column}_{selection_id}", on_select="rerun", selection_mode="points")
        picked = sorted({str(point["x"]) for point in (clicked.selection.points if clicked else [])})
        if picked:
            _narrow(picked)
        present = texts_of_values[np.unique(selected_codes)].tolist()  # sorted, as the values are
        keep_values = breakdown[0].multiselect(f"Keep only these {column} values", present, key=f"map_sel_keep_{column}",
                                               help="Or click a bar of the chart.")
        if breakdown[0].button("Narrow the selection", key="map_narrow", disabled=not keep_values):
            _narrow(keep_values)
        if audit_table is not None:
            flagged = analysis.first_flags(audit_table) != "no flag"
            st.caption(f"Audit flags: {flagged[in_selection].mean():.1%} of the selected pairs, "
                       f"{flagged.mean():.1%} of all pairs.")
else:
    st.caption("Nothing selected: lasso or box a region, or search the texts.")

# ------------------------------------------------------------------------------ a clicked pair
if focus:
    pair = int(focus["pair"])
    frame = data.frame
    prompt, chosen_text, rejected_text = (render_text(frame.at[pair, c]) for c in ("prompt", "chosen", "rejected"))
    st.subheader(f"Pair #{pair + 1}")
    facts = []
    if audit_table is not None:
        row = audit_table.iloc[pair]
        flip = row["flip_probability"] if "flip_probability" in audit_table.columns else row["flip_score"]
        facts.append(f"{'flip probability' if 'flip_probability' in audit_table.columns else 'flip score'} "
                     f"{flip:.2f} · {row['reasons'] or 'no audit flag'}")
    lengths = analysis.lengths(data).iloc[pair]
    facts.append(f"{int(lengths['chosen'])} vs {int(lengths['rejected'])} words (chosen vs rejected)")
    st.caption(" · ".join(facts))
    st.text("PROMPT\n" + prompt)
    sides = st.columns(2)
    sides[0].text("CHOSEN\n" + chosen_text)
    sides[1].text("REJECTED\n" + rejected_text)
    st.markdown("**Word diff** (`-` only in chosen, `+` only in rejected)")
    st.code(word_diff(chosen_text, rejected_text), language=None)
    row = focus.get("row")
    if row is not None and 0 <= row < n_points:
        near_rows, similarity = mapview.nearest_rows(source, int(row), k=10)
        previews = analysis.prompt_previews(data)
        near = {"pair": [int(pair_index[r]) + 1 for r in near_rows],
                "completion": ["pair" if label is None else ("chosen" if label[r] == 1 else "rejected") for r in near_rows],
                "similarity": similarity, "prompt": [previews[int(pair_index[r])] for r in near_rows]}
        st.markdown("**Nearest completions** (cosine of the embeddings)")
        st.dataframe(near, hide_index=True, key="map_near",
                     column_config={"similarity": st.column_config.NumberColumn(format="%.3f")})
        if st.button("Select this pair and its neighbours", key="map_select_near"):
            rows = np.concatenate([[row], near_rows])
            mapview.set_selection(data, pair_index[rows], f"neighbours of #{pair + 1}", rows=rows)
            st.rerun()
    if st.button("Close the pair", key="map_close_pair"):
        st.session_state.pop(mapview.FOCUS_KEY, None)
        st.rerun()
