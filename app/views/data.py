"""Data page: choose a data set (demo / upload / path in the data root / hub id) and inspect it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from alignscope import settings
from alignscope.app import analysis, charts, state
from alignscope.data.preferences import CANONICAL, DEFAULT_MAX_ROW_CHARS, DataError, parse_column_map, render_text
from alignscope.files import PathOutsideRootError

st.title("Data")
st.caption("Load the preference pairs you want to study (prompt, chosen, rejected). The active data "
           "set is used by every other page. Text is always shown as plain text.")

# ------------------------------------------------------------------------------ choose a source
SOURCES = ["Demo data", "Upload a file", "Path in the data root", "Hugging Face Hub"]


def _loaded_from(data) -> tuple[str, str]:
    """Which source option loaded ``data``, and its path relative to the data root (or "")."""
    if data is None or data.is_demo:
        return SOURCES[0], ""
    link = state.data_link(data)["data"]
    if link.startswith("upload:"):
        return SOURCES[1], ""
    if link.startswith("hub:"):
        return SOURCES[3], ""
    return SOURCES[2], link


# The radio starts at the option that loaded the active data set (e.g. `alignscope app --data FILE`).
loaded_kind, loaded_path = _loaded_from(state.active_data())
kind = st.radio("Source", SOURCES, index=SOURCES.index(loaded_kind), horizontal=True, key="data_source_kind")
with st.expander("Loading options"):
    opt_cols = st.columns(3)
    drop_invalid = opt_cols[0].checkbox("Drop invalid rows (and report them)", key="data_drop_invalid",
                                        help="Otherwise loading stops at the first invalid row.")
    column_map = opt_cols[1].text_input("Column mapping", key="data_column_map",
                                        placeholder="prompt=question, chosen=good, rejected=bad")
    split = opt_cols[2].text_input("Split (datasets folders, hub)", key="data_split", placeholder="train")


def _attempt(load_fn, *args, **kwargs) -> None:
    """Run a load and turn every failure into an error box, never a traceback."""
    try:
        options = {"drop_invalid": drop_invalid, "columns": parse_column_map(column_map),
                   "split": split.strip() or None, "max_row_chars": DEFAULT_MAX_ROW_CHARS}
        with st.spinner("Loading and validating…"):
            data = load_fn(*args, **options, **kwargs)
    except (DataError, PathOutsideRootError) as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - the page must keep serving
        st.error(f"Could not load the data: {type(err).__name__}: {err}", icon=":material/error:")
    else:
        # Rerun so that everything drawn before this point (the sidebar) shows the new data set.
        st.session_state["data_flash"] = f"Loaded {data.n_pairs:,} pairs ({data.format})."
        st.rerun()


with st.form("data_source_form", border=True):
    if kind == "Demo data":
        cols = st.columns(2)
        n = cols[0].number_input("Pairs", min_value=100, max_value=50_000, value=3000, step=500)
        seed = cols[1].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0)
        if st.form_submit_button("Load demo data", type="primary"):
            _attempt(state.load, f"demo:{int(n)}:{int(seed)}")
    elif kind == "Upload a file":
        upload = st.file_uploader("Preference file", type=["jsonl", "json", "parquet", "csv", "gz"],
                                  help="jsonl / json / parquet / csv, optionally gzipped")
        if st.form_submit_button("Load file", type="primary"):
            if upload is None:
                st.error("Choose a file first.")
            else:
                _attempt(state.load_upload, upload.name, upload.getvalue())
    elif kind == "Path in the data root":
        root = settings.data_root()
        found = state.files_in_data_root()
        picked = st.selectbox(f"Files found under {root}", [""] + found, key="data_found")
        typed = st.text_input("…or type a path relative to the data root", value=loaded_path, key="data_path")
        if st.form_submit_button("Load path", type="primary"):
            target = typed.strip() or picked
            if not target:
                st.error("Pick or type a path.")
            else:
                _attempt(state.load_user_path, target)
    else:
        hub_id = st.text_input("Hub id", placeholder="org/name[:split]", key="data_hub_id",
                               help="Needs internet access to the Hugging Face Hub.")
        if st.form_submit_button("Load from the Hub", type="primary"):
            if not hub_id.strip():
                st.error("Type a hub id such as Anthropic/hh-rlhf:test.")
            else:
                _attempt(state.load, hub_id.strip())
if "data_flash" in st.session_state:  # under the form that loaded it, where the eye is
    st.success(st.session_state.pop("data_flash"))

# ------------------------------------------------------------------------------------- overview
data = state.active_data()
if data is None:
    st.info("No data set yet. Load the demo data or one of your own files above.")
    st.stop()

if data.is_demo:
    st.info("**Demo data.** Synthetic pairs from eight topics and three sources. Planted defects, "
            "recorded in metadata columns: flipped labels (`is_flipped`), near-duplicates "
            "(`duplicate_of`), low-quality pairs (`is_low_quality`).", icon=":material/science:")
metrics = st.columns(4)
metrics[0].metric("Pairs", f"{data.n_pairs:,}")
# Short names: the card is a quarter of the page, and "implicit_prompt" was cut to "implicit_pro…".
FORMAT_CARD = {"standard": "standard", "conversational": "messages", "implicit_prompt": "implicit"}
metrics[1].metric("Format", FORMAT_CARD.get(data.format, data.format), help="standard: explicit prompt column; "
                  "messages (conversational): message lists; implicit (implicit_prompt): the prompt extracted from "
                  "the shared dialogue prefix")
metrics[2].metric("Metadata columns", len(data.metadata_columns))
metrics[3].metric("Dropped rows", f"{data.report.n_dropped:,}", help="invalid rows dropped while loading")
st.caption(f"Source: {data.source} · format {data.format} · fingerprint {data.fingerprint} (hash of the canonical "
           "rows; keys caches and runs)")

report = data.report
if report.dropped:
    st.warning(f"Validation: {report.summary()}")
    st.dataframe(pd.DataFrame(report.dropped), hide_index=True, height=200)
else:
    st.success(f"Validation: all {report.n_read:,} rows valid.")
for what, count in report.warnings.items():
    st.caption(f"Note: {count:,} {what}.")

# Lazy tabs: only the open tab's content is built and sent (the charts and the 1,000-row table of
# the other tabs cost the browser ~0.4 s on every visit of this page; benchmarks/bench_pages).
# The tabs' pickers keep their values while another tab (or page) is shown.
state.keep_choices("data_pair", "data_log_lengths")
if not 1 <= st.session_state.setdefault("data_pair", 1) <= data.n_pairs:  # kept from a larger data set
    st.session_state["data_pair"] = 1
st.session_state.setdefault("data_log_lengths", True)
tab_pairs, tab_lengths, tab_meta, tab_table = st.tabs(["Pairs", "Lengths", "Metadata", "Table"], key="data_tab",
                                                      on_change="rerun")

if tab_pairs.open:  # lazy: only the open tab is built
    with tab_pairs:
        st.caption("One pair at a time, chosen beside rejected.")
        pick = st.number_input("Pair (1-based row)", min_value=1, max_value=data.n_pairs, key="data_pair")
        row = data.frame.iloc[int(pick) - 1]
        with st.container(border=True):
            st.markdown("**Prompt**")
            st.text(render_text(row["prompt"]))
        left, right = st.columns(2)
        with left.container(border=True):
            st.markdown(":green[**Chosen**]")
            st.text(render_text(row["chosen"]) or "(empty response)")
        with right.container(border=True):
            st.markdown(":red[**Rejected**]")
            st.text(render_text(row["rejected"]) or "(empty response)")
        if data.metadata_columns:
            st.dataframe(pd.DataFrame([row[data.metadata_columns].astype(str)]), hide_index=True)



@st.cache_resource(show_spinner=False, max_entries=8)
def _length_figure(fingerprint: str, log_x: bool, _lengths: pd.DataFrame):
    """The length histogram, built once per data set and scale for every session (read-only)."""
    return charts.length_histogram(_lengths, log_x=log_x)


@st.cache_resource(show_spinner=False, max_entries=4)
def _metadata_figures(fingerprint: str, _summaries: dict) -> dict:
    """One chart per summarised metadata column, built once per data set (read-only)."""
    return {column: charts.value_histogram(counts, column) if kind == "histogram" else charts.count_bar(counts, column)
            for column, (kind, counts) in _summaries.items()}


if tab_lengths.open:  # lazy: only the open tab is built
    with tab_lengths:
        lengths = analysis.lengths(data)
        longer = float((lengths["chosen"] > lengths["rejected"]).mean())
        cols = st.columns(3)
        cols[0].metric("Median prompt length", f"{int(lengths['prompt'].median())} words")
        cols[1].metric("Median chosen / rejected", f"{int(lengths['chosen'].median())} / "
                       f"{int(lengths['rejected'].median())} words")
        cols[2].metric("Chosen longer than rejected", f"{longer:.1%}",
                       help="A share far from 50 % means length alone predicts the label (length bias).")
        log_x = st.toggle("Log scale", key="data_log_lengths")
        st.plotly_chart(_length_figure(data.fingerprint, log_x, lengths), key="data_length_chart")
        st.dataframe(lengths.describe(percentiles=[0.5, 0.95]).T.round(1), key="data_length_stats")

TOP_CATEGORIES = 15  # more bars than this are unreadable: the rest are summed as "other"


@st.cache_data(show_spinner=False, max_entries=8)
def _metadata_summaries(fingerprint: str, _data) -> dict[str, tuple[str, pd.Series]]:
    """Per metadata column, once per data set: ("counts", top values + "other") for categories,
    ("histogram", counts per bin) for numbers with many values; unhashable columns are skipped, and
    so are identifiers (every value distinct, not a measured number: a chart of them is one bar per
    row)."""
    summaries = {}
    for column in _data.metadata_columns:
        values = _data.frame[column]
        try:
            distinct = values.nunique(dropna=False)
        except TypeError:  # unhashable values (lists, dicts): nothing to count
            continue
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if distinct == len(values) > 1 and not pd.api.types.is_float_dtype(values):
            continue  # an id: integers or texts, each once
        if numeric and distinct > TOP_CATEGORIES:
            finite = values.dropna().to_numpy(dtype=float)
            counts, edges = np.histogram(finite, bins=min(40, max(5, distinct)))
            labels = [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(len(counts))]
            summaries[column] = ("histogram", pd.Series(counts, index=labels))
        elif distinct >= 1 and (distinct <= 2000 or not numeric):
            counts = values.astype(str).value_counts()
            if len(counts) > TOP_CATEGORIES:
                rest = counts.iloc[TOP_CATEGORIES:]
                counts = pd.concat([counts.iloc[:TOP_CATEGORIES],
                                    pd.Series([rest.sum()], index=[f"other ({len(rest):,} values)"])])
            summaries[column] = ("counts", counts)
    return summaries


if tab_meta.open:  # lazy: only the open tab is built
    with tab_meta:
        summaries = _metadata_summaries(data.fingerprint, data)
        for column, chart in _metadata_figures(data.fingerprint, summaries).items():
            st.plotly_chart(chart, key=f"data_meta_{column}")
        if not summaries:
            st.caption("No metadata column to summarise.")
        skipped = [c for c in data.metadata_columns if c not in summaries]
        if skipped:
            st.caption(f"Not charted: {', '.join(skipped)} (identifiers, every value distinct, or values that "
                       "cannot be counted).")

def _cut(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


@st.cache_resource(show_spinner=False, max_entries=4)
def _preview(fingerprint: str, limit: int, _data) -> pd.DataFrame:
    """The first ``limit`` rows with texts rendered and cut, once per data set (read-only)."""
    preview = _data.frame.head(limit).copy()
    preview.index = pd.RangeIndex(1, len(preview) + 1, name="pair")  # pairs are numbered from 1 on every page
    for column in CANONICAL:  # a table cell shows a line anyway; whole texts would make this page MBs
        preview[column] = [_cut(render_text(v)) for v in preview[column]]
    return preview


if tab_table.open:  # lazy: only the open tab is built
    with tab_table:
        limit = min(data.n_pairs, 1000)
        st.caption(f"First {limit:,} rows; message lists rendered as role: content; texts cut at 500 characters "
                   "(the Pairs tab shows them whole).")
        st.dataframe(_preview(data.fingerprint, limit, data), hide_index=False, height=420)

# While the user reads this page, the Select page's ISA ranking is made in the background, when the
# embeddings it needs already exist (an `alignscope embed`, a sweep, an earlier session).
computed = analysis.computed_source(data)
if computed is not None:
    analysis.prefetch_isa_ranking(computed)
