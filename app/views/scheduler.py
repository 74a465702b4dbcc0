"""Scheduler page: what SamS did inside a DPO + SamS run — which pairs each step picked and
skipped, the score and reward distributions, how often each pair was picked, whether flipped-label
pairs were avoided (when the noise is known), the picked share by source and the completion length
of picked vs skipped pairs. Rates leave the warm-up steps out (every pair is picked there)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from alignscope.app import charts, state
from alignscope.jobs import read_run_config
from alignscope.train.sams_log import (flip_groups, pair_words, read_sams_log, selection_rates, step_decisions,
                                       step_summary, words_selected_vs_skipped)

st.title("Scheduler")
st.caption("SamS scores every pair of every DPO batch from the policy's own hidden states and lets only the "
           "best ⌈ρ·n⌉ of them move the model. This page shows its decisions for one DPO + SamS run. "
           "Start such a run on the Train page (method “DPO + SamS”).")

store = state.job_store()
runs = [j for j in store.list_jobs(kind="train", limit=300) if j.config.get("method") == "dpo-sams"]
if not runs:
    st.info("No DPO + SamS run yet: on the Train page pick the method “DPO + SamS” and start one; its "
            "schedule appears here as it trains.")
    st.stop()
labels = {j.id: f"{j.id} · {j.config.get('model')} · ρ={j.config.get('sams_ratio', 0.5)} · "
                f"context {j.config.get('sams_context', 'default')} · {j.status}" for j in runs}
picked = st.selectbox("Run", list(labels), format_func=labels.get, key="scheduler_run")
job = store.get(picked)


def _run_data(fingerprint: str | None):
    """The active data when it is the run's own (same fingerprint), else None."""
    data = state.active_data()
    return data if data is not None and data.fingerprint == fingerprint else None


@st.fragment(run_every=3)
def schedule(job_id: str) -> None:
    job = store.get(job_id)
    run_dir = Path(job.run_dir)
    log = read_sams_log(run_dir)
    if job.status == "failed":
        st.error(f"This run failed: {job.error}")
    if log.empty:
        st.info("No step logged yet." if job.is_active else "This run logged no scheduler step.")
        return
    try:
        recorded = read_run_config(run_dir)
    except (OSError, ValueError):
        recorded = {}
    for note in recorded.get("sams_warnings") or []:
        st.warning(note)
    ratio = float(job.config.get("sams_ratio", 0.5))
    steps = step_summary(log)
    cols = st.columns(4)
    cols[0].metric("Steps logged", f"{len(steps):,}", help=f"{job.status}")
    cols[1].metric("Pairs per batch", f"{steps['batch'].iloc[-1]:,}")
    cols[2].metric("Selected share", f"{log['selected'].mean():.0%}", help="⌈ρ·n⌉ / n per step; warm-up steps keep all")
    cols[3].metric("Distinct pairs seen", f"{log['index'].nunique():,}")

    st.plotly_chart(charts.schedule_strip(log), key="scheduler_strip")
    cols = st.columns(2)
    cols[0].plotly_chart(charts.kept_histogram(log["score"], log["selected"], name="scheduler score",
                                               title="Scores: selected vs skipped", labels=("selected", "skipped"),
                                               y_title="pairs × steps"), key="scheduler_scores")
    rewarded = log.dropna(subset=["reward"])
    if rewarded.empty:
        cols[1].caption("Rewards appear one step later (the scheduler is trained on what the previous step did).")
    else:
        cols[1].plotly_chart(charts.kept_histogram(rewarded["reward"], rewarded["selected"], name="reward r",
                                                   title="Rewards the scheduler learned from", labels=("selected", "skipped"),
                                                   y_title="pairs × steps"), key="scheduler_rewards")
    curves = steps.reset_index()
    cols = st.columns(2)
    cols[0].plotly_chart(charts.metric_curves({"DPO loss (whole batch)": curves}, "loss",
                                              title="DPO loss per step"), key="scheduler_loss_curve")
    cols[1].plotly_chart(charts.metric_curves({"scheduler": curves}, "scheduler_loss",
                                              title="Scheduler MSE per update"), key="scheduler_mse_curve")

    st.subheader("Which pairs it preferred")
    per_pair = selection_rates(log)
    cols = st.columns(2)
    cols[0].plotly_chart(charts.frequency_histogram(per_pair), key="scheduler_frequency")
    data = _run_data((job.config.get("data") or {}).get("fingerprint"))
    flips, flip_source = flip_groups(run_dir, None if data is None else data.frame)
    if flips is not None:
        rates = selection_rates(log, flips)
        cols[1].plotly_chart(charts.rate_bars(rates, title="Selection rate: flipped vs clean labels",
                                              x_title=flip_source, baseline=ratio), key="scheduler_flips")
    else:
        cols[1].caption("Whether flipped labels were avoided shows here when the noise is known: train with "
                        "label noise, or on data with an is_flipped column (the demo set).")
    if data is not None and "source" in data.frame.columns:
        rates = selection_rates(log, data.frame["source"])
        st.plotly_chart(charts.rate_bars(rates, title="Selection rate per source", x_title="source", baseline=ratio),
                        key="scheduler_sources")
    lengths, selected = None, None
    if data is not None:
        lengths, selected, picked_words, skipped_words = words_selected_vs_skipped(log, words_of(data.fingerprint,
                                                                                                   data.frame))
    if lengths is not None and not lengths.empty:
        cols = st.columns([1, 2])
        cols[0].metric("Completion words, selected pairs", f"{picked_words:,.1f}",
                       help="mean of (chosen + rejected words) / 2 over the pairs selected after warm-up")
        cols[0].metric("Completion words, skipped pairs", f"{skipped_words:,.1f}",
                       delta=f"{picked_words - skipped_words:+.1f} selected − skipped", delta_color="off")
        cols[1].plotly_chart(charts.kept_histogram(lengths, selected, name="completion words",
                                                   title="Completion length: selected vs skipped",
                                                   labels=("selected", "skipped"), y_title="pairs × steps"),
                             key="scheduler_lengths")
    else:
        st.caption("The completion length of selected vs skipped pairs shows here when the run's data set is the "
                   "active one.")

    with st.expander("Per-step decisions"):
        st.dataframe(step_decisions(log), hide_index=True, key="scheduler_table")


@st.cache_data(max_entries=4, show_spinner=False)
def words_of(fingerprint: str, _frame: pd.DataFrame) -> pd.Series:
    """Mean completion words of each pair by data index, counted once per data fingerprint."""
    return pair_words(_frame)


schedule(picked)
