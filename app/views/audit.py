"""Audit page: suspected flipped labels, near-duplicates, outliers and length bias of the active data
(:mod:`alignscope.audit`), each pair side by side with a word diff and its nearest neighbours, and
one button that makes the clean subset the active selection for Train and export."""
from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st

from alignscope.app import analysis, state
from alignscope.audit import (FLAGS, AuditError, audit_summary, clean_selection, nearest_pairs, pair_matrices,
                              search_pairs, unit_rows, word_diff)
from alignscope.data.preferences import render_text

FLAG_LABELS = analysis.FLAG_LABELS

st.title("Audit")
st.caption("Find the pairs that hurt training: labels that look flipped (out-of-fold probabilities of a "
           "cross-fitted Bradley–Terry probe, filtered by confident learning), near-copies of other pairs "
           "(same prompt, near-identical answers), outliers (far from every other completion), chosen = "
           "rejected, and how much 'the longer answer wins' explains the labels. Review them pair by pair "
           "and train on the clean subset.")

data = state.require_data()
ctx = analysis.context()
top = st.columns([2, 1, 1])
encoder = top[0].selectbox("Encoder", analysis.ENCODERS, key="audit_encoder",
                           index=analysis.ENCODERS.index(ctx["encoder"]) if ctx["encoder"] in analysis.ENCODERS else 0,
                           help="The audit reads completion-level embeddings (chosen and rejected are two points).")
ctx["encoder"] = encoder
folds = int(top[1].number_input("Probe folds", min_value=2, max_value=20, value=5, key="audit_folds"))
seed = int(top[2].number_input("Seed", min_value=0, value=0, key="audit_seed"))
embeddings = analysis.require_embeddings(data, encoder, "completion", "audit")
run_dir = embeddings.path.parent


@st.cache_resource(show_spinner=False, max_entries=2)
def _unit_pairs(run: str, stamp: float, n_pairs: int, _embeddings):
    """Unit-length chosen and rejected matrices, once per embedding (300 MB at 100k pairs)."""
    chosen, rejected = pair_matrices(_embeddings, n_pairs)
    return unit_rows(chosen), unit_rows(rejected)


stamp = analysis.embedding_stamp(run_dir)
try:
    table = analysis.audit_table(data, embeddings, folds, seed)
except AuditError as err:
    st.error(str(err))
    st.stop()


@st.cache_data(show_spinner=False, max_entries=4)
def _summary(fingerprint: str, run: str, stamp: float, folds: int, seed: int, _data, _table) -> dict:
    """The audit's summary, once per audit for every session."""
    return audit_summary(_data, _table)


summary = _summary(data.fingerprint, str(run_dir), stamp, folds, seed, data, table)
previews = analysis.prompt_previews(data)  # 120 characters of every prompt, once per data set
n = summary["n_pairs"]
# Each pair's first flag, for the Map page's "audit flag" colouring (a plain key survives page switches).
issue = analysis.first_flags(table)
st.session_state[analysis.AUDIT_FLAGS_KEY] = {"fingerprint": data.fingerprint, "issue": issue, "run": str(run_dir),
                                             "folds": folds, "seed": seed}

# ------------------------------------------------------------------------------------ cards
cards = st.columns(5)
for column, (name, key) in zip(cards, (("Suspected flips", "suspect_flip"), ("Near-duplicates", "duplicates"),
                                       ("Outliers", "outliers"), ("Chosen = rejected", "identical"))):
    column.metric(name, f"{summary[key]:,}", f"{summary[key] / n:.1%} of pairs", delta_color="off")
cards[4].metric("Chosen is longer", f"{summary['chosen_longer_share']:.1%}",
                f"length rule {summary['length_baseline']:.1%} ({summary['length_baseline_direction']})",
                delta_color="off", help="Accuracy of 'the longer (or, if most pairs say so, the shorter) answer "
                                        "wins' on these labels: the baseline every reward model must beat.")
st.caption(f"{summary['dup_groups']:,} near-duplicate groups (one pair of each is kept). The probe behind the flip "
           f"scores agrees with {summary['probe_oof_accuracy']:.1%} of the labels out of fold (the length rule: "
           f"{summary['length_baseline']:.1%}); the weaker it is, the more of the suspected flips are its own errors.")
if data.is_demo and "is_flipped" in data.frame.columns:
    planted = data.frame["is_flipped"].to_numpy(dtype=bool)
    found = table["suspect_flip"].to_numpy()
    st.caption(f"Demo data: {int((found & planted).sum()):,} of the {int(planted.sum()):,} planted flips are among "
               f"the {int(found.sum()):,} suspected ones.")

if summary["by_column"]:
    by = st.selectbox("Rates per", list(summary["by_column"]), key="audit_by",
                      index=list(summary["by_column"]).index("source") if "source" in summary["by_column"] else 0)
    rows = pd.DataFrame(summary["by_column"][by])
    shown = rows[["value", "n_pairs", "suspect_flip_rate", "duplicate_rate", "outlier_rate", "identical_rate",
                  "chosen_longer_share", "length_baseline"]].rename(columns={"value": by})
    st.dataframe(shown.style.format({c: "{:.1%}" for c in shown.columns[2:]}), hide_index=True, key="audit_by_table")

# ---------------------------------------------------------------------------- flagged pairs
st.subheader("Flagged pairs")
controls = st.columns([2, 1, 2])
kinds = controls[0].multiselect("Issue types", list(FLAGS), default=list(FLAGS), key="audit_kinds",
                                format_func=FLAG_LABELS.get)
sort_by = controls[1].selectbox("Sort by", ["flip_score", "outlier_score", "length_ratio"], key="audit_sort")
query = controls[2].text_input("Search prompts and responses", key="audit_query")
mask = table[kinds].any(axis=1).to_numpy() if kinds else pd.Series(False, index=table.index).to_numpy()
rows = table.index[mask].to_numpy()
if query.strip():
    rows = rows[pd.Index(rows).isin(search_pairs(data, query))]
flagged = table.loc[rows].sort_values(sort_by, ascending=False, kind="stable")
listing = flagged[["index", "reasons", "flip_score", "outlier_score", "length_ratio", "dup_group"]].copy()
listing.insert(2, "prompt", previews[listing["index"].to_numpy(dtype=np.int64)])
st.dataframe(listing, hide_index=True, key="audit_flagged", column_config={
    "flip_score": st.column_config.NumberColumn(format="%.3f"),
    "outlier_score": st.column_config.NumberColumn(format="%.2f"),
    "length_ratio": st.column_config.NumberColumn(format="%.2f")})
st.caption(f"{len(flagged):,} of {n:,} pairs match.")

# -------------------------------------------------------------------------------- pair view
st.subheader("One pair")
default_pair = int(flagged["index"].iloc[0]) if len(flagged) else 0
pair = int(st.number_input("Pair", min_value=0, max_value=n - 1, value=default_pair, key=f"audit_pair_{default_pair}"))
row = table.loc[pair]
st.caption(f"#{pair}: {row['reasons'] or 'no flag'} · flip score {row['flip_score']:.3f} · outlier z "
           f"{row['outlier_score']:.2f} · {int(row['chosen_words'])} vs {int(row['rejected_words'])} words")
st.text("PROMPT\n" + render_text(data.frame.at[pair, "prompt"]))
sides = st.columns(2)
chosen_text, rejected_text = (render_text(data.frame.at[pair, c]) for c in ("chosen", "rejected"))
sides[0].text("CHOSEN\n" + chosen_text)
sides[1].text("REJECTED\n" + rejected_text)
st.markdown("**Word diff** (`-` only in chosen, `+` only in rejected)")
st.code(word_diff(chosen_text, rejected_text), language=None)
chosen_m, rejected_m = _unit_pairs(str(run_dir), stamp, n, embeddings)
near = nearest_pairs(chosen_m, rejected_m, pair, k=5, normalised=True)
near["prompt"] = [previews[i][:100] for i in near["index"]]
near["flags"] = [table.at[i, "reasons"] for i in near["index"]]
st.markdown("**Nearest pairs** (cosine of the chosen and rejected embeddings, averaged)")
st.dataframe(near, hide_index=True, key="audit_near",
             column_config={"similarity": st.column_config.NumberColumn(format="%.3f")})

# ---------------------------------------------------------------------------------- clean subset
st.subheader("Use the clean subset")
cols = st.columns([3, 2, 1])
drop = cols[0].multiselect("Drop pairs that are", list(FLAGS), default=list(FLAGS), key="audit_drop",
                           format_func=FLAG_LABELS.get)
name = cols[1].text_input("Name", value="clean", key="audit_name")
keep = ~table[drop].any(axis=1) if drop else pd.Series(True, index=table.index)
st.caption(f"The clean subset keeps {int(keep.sum()):,} of {n:,} pairs.")
if cols[2].button("Use the clean subset", type="primary", key="audit_use", disabled=not drop):
    try:
        selection = clean_selection(data, table, drop)
    except AuditError as err:
        st.error(str(err))
    else:
        analysis.save_active_selection(data, selection, name)
        st.success(f"'{name}' is the active selection ({selection.n_selected:,} pairs): the Train page "
                   "trains on it; `alignscope export DATA SEL.parquet` exports it.")
active = analysis.active_selection(data)
if active:
    st.caption(f"Active selection for training: '{active['name']}' ({active['n_selected']:,} points).")
