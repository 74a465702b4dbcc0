"""Audit page: suspected flipped labels, near-duplicates, outliers and length bias of the active data
(:mod:`alignscope.audit`), how often the flip flags are right on this data (self-calibration on
planted copies, in words and with intervals), each pair side by side with a word diff and its
nearest neighbours, and one button that makes the clean subset the active selection."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.app import analysis, charts, state
from alignscope.audit import (FLAGS, AuditConfig, AuditError, CalibrationConfig, audit_option_fields,
                              audit_summary, calibrate_audit, clean_selection, duplicate_members, fix_flips,
                              keep_duplicates, nearest_pairs, pair_matrices, search_pairs, unit_rows, word_diff)
from alignscope.data.preferences import render_text
from alignscope.options import range_text

DUP_KEEP_KEY = "alignscope_dup_keep"  # {"fingerprint", "keep": {group: pair}}: copies kept by hand
FLAG_LABELS = analysis.FLAG_LABELS

st.title("Audit")
st.caption("Find the pairs that hurt training: labels that look flipped (out-of-fold probabilities of one "
           "cross-fitted model of an embedding probe, the length rule, neighbour agreement and a word probe, "
           "filtered by confident learning), near-copies of other pairs "
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
OPTIONS = audit_option_fields()  # bounds, defaults and help declared once (alignscope.audit.config)


def _number(column, label: str, name: str, key: str, **kwargs):
    """A number widget whose bounds, default and tooltip come from the option's declaration."""
    f = OPTIONS[name]
    meta = f.metadata
    low, high = meta.get("min"), meta.get("max")
    cast = int if isinstance(f.default, int) else float  # Streamlit wants one numeric type
    low, high = (None if low is None else cast(low)), (None if high is None else cast(high))
    help_text = f"{meta['help']} ({range_text(meta)})" if range_text(meta) else meta["help"]
    return column.number_input(label, min_value=low, max_value=high, value=f.default, key=key, help=help_text, **kwargs)


folds = int(_number(top[1], "Folds", "folds", "audit_folds"))
seed = int(_number(top[2], "Seed", "seed", "audit_seed"))
embeddings = analysis.require_embeddings(data, encoder, "completion", "audit")
source = analysis.source_of(embeddings)


@st.cache_resource(show_spinner=False)
def _calibrations() -> dict:
    """Calibrated audits shared by every session, by (fingerprint, run, stamp, options); the last 4."""
    return {}


@st.cache_resource(show_spinner=False, max_entries=2)
def _unit_pairs(run: str, stamp: float, n_pairs: int, _embeddings):
    """Unit-length chosen and rejected matrices, once per embedding (300 MB at 100k pairs)."""
    chosen, rejected = pair_matrices(_embeddings, n_pairs)
    return unit_rows(chosen), unit_rows(rejected)


stamp = analysis.embedding_stamp(source)
try:  # computed once per data set and options by a background job, shared with the CLI and sweeps
    audit_config = AuditConfig(encoder=encoder, folds=folds, seed=seed).validate()
except AuditError as err:
    st.error(str(err))
    st.stop()
table = analysis.require_audit(data, audit_config)


@st.cache_data(show_spinner=False, max_entries=4)
def _summary(fingerprint: str, run: str, stamp: float, folds: int, seed: int, _data, _table) -> dict:
    """The audit's summary, once per audit for every session."""
    return audit_summary(_data, _table)


summary = _summary(data.fingerprint, source, stamp, folds, seed, data, table)
previews = analysis.prompt_previews(data)  # 120 characters of every prompt, once per data set
n = summary["n_pairs"]
# Each pair's first flag, for the Map page's "audit flag" colouring (a plain key survives page switches).
issue = analysis.first_flags(table)
st.session_state[analysis.AUDIT_FLAGS_KEY] = {"fingerprint": data.fingerprint, "issue": issue}
st.session_state[analysis.AUDIT_CONFIG_KEY] = {"fingerprint": data.fingerprint,  # what the Map's audit colours read
                                               "config": dataclasses.asdict(audit_config)}
st.session_state[state.AUDIT_TABLE_KEY] = {"fingerprint": data.fingerprint, "table": table}  # the report's audit

# ------------------------------------------------------------------------------------ cards
cards = st.columns(5)
for column, (name, key) in zip(cards, (("Suspected flips", "suspect_flip"), ("Near-duplicates", "duplicates"),
                                       ("Outliers", "outliers"), ("Chosen = rejected", "identical"))):
    # Counts, not changes: the share goes in a caption (a metric's delta would draw a rising arrow).
    column.metric(name, f"{summary[key]:,}")
    column.caption(f"{summary[key] / n:.1%} of pairs")
cards[4].metric("Chosen is longer", f"{summary['chosen_longer_share']:.1%}",
                help="Accuracy of 'the longer (or, if most pairs say so, the shorter) answer "
                     "wins' on these labels: the baseline every reward model must beat.")
cards[4].caption(f"length rule {summary['length_baseline']:.1%} ({summary['length_baseline_direction']})")
agreement = ", ".join(f"{signal} {share:.1%}" for signal, share in summary["signal_agreement"].items())
st.caption(f"{summary['dup_groups']:,} near-duplicate groups (one pair of each is kept). The flip model agrees with "
           f"{summary['probe_oof_accuracy']:.1%} of the labels out of fold (each signal alone: {agreement}; the length "
           f"rule: {summary['length_baseline']:.1%}); the weaker it is, the more of the suspected flips are its own errors.")
# ---------------------------------------------------------------------------- calibration
st.subheader("How often are the flip flags right on this data?")
st.caption("Self-calibration: copies of the data get known flips (and near-copies) planted, the same audit runs on "
           "each, and the planted pairs show how often a flag is right here, how many flips the data already holds "
           "and how many pairs you can flag at a precision you choose. It assumes real flips look like random swaps.")
cal_cols = st.columns([1, 1, 1, 1])
planted_rate = float(_number(cal_cols[0], "Planted flips", "planted_rate", "audit_planted_rate", step=0.01,
                             format="%.2f"))
repeats = int(_number(cal_cols[1], "Planted copies", "repeats", "audit_repeats"))
target = float(_number(cal_cols[2], "Target precision", "target_precision", "audit_target", step=0.05, format="%.2f"))
cal_key = (data.fingerprint, source, stamp, folds, seed, planted_rate, repeats, target)
calibrated = _calibrations().get(cal_key)
if calibrated is None and cal_cols[3].button("Calibrate", key="audit_calibrate", type="secondary",
                                             help=f"{repeats + 1} audits in all"):
    bar = st.progress(0.0, text="planting flips…")
    started = time.monotonic()

    def _tell(fraction: float, message: str) -> None:
        elapsed = time.monotonic() - started
        eta = f", about {elapsed / fraction * (1 - fraction):.0f} s left" if fraction > 0.02 else ""
        bar.progress(min(1.0, fraction), text=f"{message} ({elapsed:.0f} s{eta})")

    try:
        calibrated = calibrate_audit(data, table, embeddings, config=AuditConfig(encoder=encoder, folds=folds, seed=seed),
                                     calibration=CalibrationConfig(calibrate=True, planted_rate=planted_rate,
                                                                   repeats=repeats, target_precision=target),
                                     report=_tell)
    except AuditError as err:
        st.error(str(err))
    else:
        store = _calibrations()
        store[cal_key] = calibrated
        for old in list(store)[:-4]:
            store.pop(old)
    bar.empty()
if calibrated is not None:
    result = calibrated.attrs["alignscope_audit"]["calibration"]
    table = calibrated  # the flagged list below shows flip_probability too
    for sentence in result["sentences"]:
        st.markdown(f"- {sentence}")

    def _ci(values, percent=False) -> str:
        if values is None or None in values:
            return "cannot tell"
        return f"[{values[0]:.0%}, {values[1]:.0%}]" if percent else f"[{values[0]:,}, {values[1]:,}]"

    # Every estimate beside its interval, in the same type (a big number over a small interval reads
    # as more certain than it is).
    unknown = result["flag_precision"] is None
    st.dataframe(pd.DataFrame([
        {"estimate": "flagged pairs that are real flips",
         "value": "cannot tell" if unknown else f"{result['flagged_real_flips']:,}",
         "95 % interval": _ci(result["flagged_real_flips_ci95"])},
        {"estimate": "flag precision", "value": "cannot tell" if unknown else f"{result['flag_precision']:.0%}",
         "95 % interval": _ci(result["flag_precision_ci95"], True)},
        {"estimate": "flag recall", "value": "cannot tell" if result["flag_recall"] is None
         else f"{result['flag_recall']:.0%}", "95 % interval": _ci(result["flag_recall_ci95"], True)},
        {"estimate": "flipped pairs in the data" + (" (upper bound)" if result["bound_only"] else ""),
         "value": f"{result['estimated_flips']:,}", "95 % interval": _ci(result["estimated_flips_ci95"])},
    ]), hide_index=True, key="audit_calibration_table")
    st.plotly_chart(charts.calibration_curve(result["curve"], target=result["target_precision"],
                                             flagged=result["flagged"]), key="audit_calibration_chart")
    n_fix = len(fix_flips(calibrated, CalibrationConfig().fix_threshold))
    st.caption(f"{n_fix:,} flagged pairs have a flip probability ≥ {CalibrationConfig().fix_threshold:g}: "
               "`alignscope audit DATA --calibrate --fix-out FIXED.jsonl` writes the data with their labels swapped back.")
if data.is_demo and "is_flipped" in data.frame.columns:
    planted = data.frame["is_flipped"].to_numpy(dtype=bool)
    found = table["suspect_flip"].to_numpy()
    subtle = int((planted & (data.frame.get("rejected_kind") == "subtle").to_numpy()).sum()) \
        if "rejected_kind" in data.frame.columns else 0
    truth = (f"Demo data: {int((found & planted).sum()):,} of the {int(planted.sum()):,} planted flips "
             f"({subtle:,} of them on subtle pairs that keep the length pattern) are among the {int(found.sum()):,} "
             "suspected ones.")
    if calibrated is not None:
        truth += (f" The calibration estimated {result['estimated_flips']:,} flips in all: it plants random swaps, "
                  "and the demo's subtle flips are harder to see than those.")
    st.caption(truth)

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
shown_columns = ["index", "reasons", "flip_score", *(["flip_probability"] if "flip_probability" in table else []),
                 "outlier_score", "length_ratio", "dup_group"]
listing = flagged[shown_columns].copy()
listing.insert(2, "prompt", previews[listing["index"].to_numpy(dtype=np.int64)])
# Pairs are numbered from 1 on every page (the Data page's "Pair" field, the map's hover): index + 1.
groups = listing["dup_group"].astype("Int64")
listing = listing.rename(columns={"index": "pair"}).assign(pair=listing["index"] + 1,
                                                           dup_group=(groups + 1).mask(groups < 0))
st.dataframe(listing, hide_index=True, key="audit_flagged", column_config={
    "flip_score": st.column_config.NumberColumn(format="%.3f"),
    "flip_probability": st.column_config.NumberColumn(format="%.2f", help="calibrated P(the label is flipped)"),
    "outlier_score": st.column_config.NumberColumn(format="%.2f"),
    "length_ratio": st.column_config.NumberColumn(format="%.2f")})
st.caption(f"{len(flagged):,} of {n:,} pairs match.")

# -------------------------------------------------------------------------------- pair view
st.subheader("One pair")
default_pair = int(flagged["index"].iloc[0]) + 1 if len(flagged) else 1
pair = int(st.number_input("Pair (numbered from 1)", min_value=1, max_value=n, value=default_pair,
                           key=f"audit_pair_{default_pair}")) - 1  # the data index from here on
row = table.loc[pair]
st.caption(f"#{pair + 1}: {row['reasons'] or 'no flag'} · flip score {row['flip_score']:.3f} · outlier z "
           f"{row['outlier_score']:.2f} · {int(row['chosen_words'])} vs {int(row['rejected_words'])} words")
st.text("PROMPT\n" + render_text(data.frame.at[pair, "prompt"]))
sides = st.columns(2)
chosen_text, rejected_text = (render_text(data.frame.at[pair, c]) for c in ("chosen", "rejected"))
sides[0].text("CHOSEN\n" + chosen_text)
sides[1].text("REJECTED\n" + rejected_text)
st.markdown("**Word diff** (`-` only in chosen, `+` only in rejected)")
st.code(word_diff(chosen_text, rejected_text), language=None, wrap_lines=True)
chosen_m, rejected_m = _unit_pairs(source, stamp, n, embeddings)
near = nearest_pairs(chosen_m, rejected_m, pair, k=5, normalised=True)
near["prompt"] = [previews[i][:100] for i in near["index"]]
near["flags"] = [table.at[i, "reasons"] for i in near["index"]]
near = near.rename(columns={"index": "pair"}).assign(pair=near["index"] + 1)
st.markdown("**Nearest pairs** (cosine of the chosen and rejected embeddings, averaged)")
st.dataframe(near, hide_index=True, key="audit_near",
             column_config={"similarity": st.column_config.NumberColumn(format="%.3f")})



def _kept_copies() -> dict[int, int]:
    """The near-duplicate groups whose kept pair was chosen by hand (group → pair) on this data."""
    chosen = st.session_state.get(DUP_KEEP_KEY)
    return dict(chosen["keep"]) if chosen and chosen.get("fingerprint") == data.fingerprint else {}


def _copy_review(pair: int) -> None:
    """The pair beside its copy (another member of its near-duplicate group): each field side by
    side and word-diffed, wrapped, and which member the clean subset keeps."""
    members = duplicate_members(table, pair)
    if not members:
        return
    st.markdown("**Near-duplicate review**: this pair beside its copy")
    others = [m for m in members if m != pair]
    other = others[0] if len(others) == 1 else int(st.selectbox(
        "Compare with", others, key=f"audit_copy_{pair}", format_func=lambda i: f"#{i + 1}"))
    first = members[0]
    # Pairs are shown numbered from 1, as on every page.
    names = {i: f"#{i + 1}" + (" (the group's first pair)" if i == first else "") for i in members}
    for field in ("prompt", "chosen", "rejected"):
        mine, theirs = (render_text(data.frame.at[i, field]) for i in (pair, other))
        sides = st.columns(2)
        sides[0].text(f"{field.upper()} of {names[pair]}\n{mine}")
        sides[1].text(f"{field.upper()} of {names[other]}\n{theirs}")
        if mine == theirs:
            st.caption(f"The {field}s are identical.")
        else:
            st.code(word_diff(mine, theirs), language=None, wrap_lines=True)
    st.caption(f"Diff lines: `-` only in #{pair + 1}, `+` only in #{other + 1}, the rest in both.")
    keep = _kept_copies()
    current = keep.get(first, first)
    choice = int(st.radio("The clean subset keeps", members, index=members.index(current), horizontal=True,
                          key=f"audit_keep_{first}", format_func=names.get,
                          help="The other members of the group are dropped as near-duplicates."))
    if choice != current:
        if choice == first:
            keep.pop(first, None)
        else:
            keep[first] = choice
        st.session_state[DUP_KEEP_KEY] = {"fingerprint": data.fingerprint, "keep": keep}


_copy_review(pair)

# ---------------------------------------------------------------------------------- clean subset
st.subheader("Use the clean subset")
cols = st.columns([3, 2, 1])
drop = cols[0].multiselect("Drop pairs that are", list(FLAGS), default=list(FLAGS), key="audit_drop",
                           format_func=FLAG_LABELS.get)
name = cols[1].text_input("Name", value="clean", key="audit_name")
kept_copies = _kept_copies()
clean_table = keep_duplicates(table, kept_copies) if kept_copies else table
keep = ~clean_table[drop].any(axis=1) if drop else pd.Series(True, index=table.index)
st.caption(f"The clean subset keeps {int(keep.sum()):,} of {n:,} pairs."
           + (f" In {len(kept_copies):,} near-duplicate group(s) you chose which pair to keep." if kept_copies else ""))
if cols[2].button("Use the clean subset", type="primary", key="audit_use", disabled=not drop):
    try:
        selection = clean_selection(data, clean_table, drop)
        if kept_copies:
            selection = selection.replace(config={**selection.config, "kept_copies": {
                str(group): int(kept) for group, kept in kept_copies.items()}})
    except AuditError as err:
        st.error(str(err))
    else:
        analysis.save_active_selection(data, selection, name)
        st.success(f"'{name}' is the active selection ({selection.n_selected:,} pairs): the Train page "
                   "trains on it; `alignscope export DATA SEL.parquet` exports it.")
active = analysis.active_selection(data)
if active:
    st.caption(f"Active selection for training: '{active['name']}' ({analysis.selection_size_text(active, data)}).")
