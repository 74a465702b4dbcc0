"""Runs page: every job (training runs, embeddings, maps) with status, progress, logs, cancel, re-run,
and a comparison of runs' curves and metrics; a sweep is one row, its points (method, fraction,
seed) read from its points.jsonl below. Jobs live in their own processes and in the job store, so
reloading or restarting the app loses nothing."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from alignscope.app import charts, scores, state
from alignscope.run_files import EVAL_FILE, METRICS_FILE
from alignscope.jobs import JobError, format_duration, format_time, format_wait, known_kinds
from alignscope.scaling.recommend import percent_text
from alignscope.scaling.results import read_points_jsonl, split_sweep_jobs, sweep_overview

st.title("Runs")
st.caption("Every job alignscope has started, newest first; a sweep is one row however many jobs compute it. "
           "Jobs run in their own processes: reload or restart the app and they keep running. Pick one to see its "
           "curves, metrics and log.")

store = state.job_store()
filters = st.columns([2, 2, 1])
# The kinds the job registry knows (one list: a kind added there shows here).
kind_filter = filters[0].multiselect("Kind", sorted(known_kinds()), key="runs_kind")
status_filter = filters[1].multiselect("Status", ["queued", "running", "succeeded", "failed", "cancelled"],
                                       key="runs_status")
limit = filters[2].number_input("Show", min_value=10, max_value=1000, value=100, step=10, key="runs_limit",
                                help="rows shown (a sweep is one row)")


def _jobs():
    # A sweep has up to hundreds of jobs but takes one row: read enough jobs to fill the rows.
    jobs = store.list_jobs(status=status_filter or None, limit=int(limit) * 20)
    return [j for j in jobs if not kind_filter or j.kind in kind_filter]


def _rows(jobs) -> tuple[list, dict, list[dict]]:
    singles, sweeps = split_sweep_jobs(jobs)
    overviews = [sweep_overview(folder, members) for folder, members in sweeps.items()]
    rows = [{"id": j.id, "kind": j.kind, "status": j.status, "progress": j.progress, "created_at": j.created_at,
             "duration": format_duration(j.duration),
             "message": (j.error if j.status == "failed" else j.message) or ""} for j in singles]
    rows += [{"id": o["name"], "kind": f"sweep ({o['n_jobs']} jobs)", "status": o["status"], "progress": o["progress"],
              "created_at": o["created_at"], "duration": format_duration(o["duration"]),
              "message": f"{o['n_measured']} of {o['n_planned'] or '?'} points measured · {', '.join(o['methods'])}"
                         + (f" · {o['n_failed']} job(s) failed" if o["n_failed"] else "")} for o in overviews]
    rows.sort(key=lambda row: row["created_at"] or 0, reverse=True)
    return singles, sweeps, rows[:int(limit)]


@st.fragment(run_every=2)
def job_table() -> None:
    _, _, rows = _rows(_jobs())
    if not rows:
        st.info("No runs yet. Start one from the Train page, or with `alignscope train` in a terminal.")
        return
    table = pd.DataFrame(rows)
    table.insert(4, "created", [format_time(t) for t in table.pop("created_at")])
    st.dataframe(table, hide_index=True, key="runs_table", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    })


job_table()
jobs = _jobs()
singles, sweeps, _ = _rows(jobs)
if not jobs:
    st.stop()


@st.fragment(run_every=2)
def job_detail(job_id: str, key: str = "runs") -> None:
    try:
        job = store.get(job_id)
    except JobError as err:
        st.error(str(err))
        return
    head = st.columns(4)
    head[0].metric("Status", job.status)
    head[1].metric("Progress", f"{job.progress:.0%}")
    head[2].metric("Duration", format_duration(job.duration))
    head[3].metric("Kind", job.kind)
    if job.message and job.is_active:
        st.caption(job.message)
    if job.status == "queued":
        waiting = format_wait(store.jobs_ahead(job.id))
        if waiting:
            st.caption(waiting.capitalize() + ".")
    if job.status == "failed":
        st.error(f"Failed: {job.error}")
    metrics = state.run_metrics(job.run_dir)
    if not metrics.empty:
        shown = [m for m in ("loss", "rewards/margins", "rewards/accuracies") if m in metrics.columns]
        cols = st.columns(max(len(shown), 1))
        for col, metric in zip(cols, shown):
            col.plotly_chart(charts.metric_curves({job.id: metrics}, metric), key=f"{key}_curve_{metric}")
    evaluation = state.read_json_file(job.run_dir / EVAL_FILE)
    if evaluation:
        st.subheader("Evaluation")
        scores.show_scores(evaluation)
        with st.expander("Every evaluation field (eval.json)"):
            st.json(evaluation, expanded=False)
    with st.expander("Log (last 200 lines)"):
        st.code(store.logs(job.id, tail=200) or "(empty)", language=None)
    with st.expander("Config"):
        st.json(job.config, expanded=False)
        st.caption(f"Run directory: {job.run_dir}")


if singles:
    labels = {j.id: f"{j.id} · {j.kind} · {j.status}" for j in singles}
    if st.session_state.get("runs_next_pick") in labels:  # a job just started here: show it, not the old one
        st.session_state["runs_pick"] = st.session_state.pop("runs_next_pick")
    if "runs_flash" in st.session_state:
        st.success(st.session_state.pop("runs_flash"))
    picked = st.selectbox("Run", list(labels), format_func=labels.get, key="runs_pick")
    job_detail(picked)

    actions = st.columns(2)
    current = store.get(picked)
    if current.is_active and actions[0].button("Cancel run", key="runs_cancel", type="secondary"):
        try:
            store.cancel(picked)
            st.toast(f"Cancelled {picked}")
            st.rerun()
        except JobError as err:
            st.error(str(err))
    if current.is_terminal and actions[1].button("Re-run with the same config", key="runs_rerun"):
        try:
            new_id = store.submit(current.kind, current.config)
            st.session_state["runs_next_pick"] = new_id
            st.session_state["runs_flash"] = f"Started {new_id}: a re-run of {picked} with the same config."
            st.rerun()
        except JobError as err:
            st.error(str(err))

# -------------------------------------------------------------------------------------- sweeps
if sweeps:
    st.subheader("Sweeps")
    st.caption("Each sweep's points as they are measured (from its points.jsonl); the Scaling page fits them.")
    names = {folder: sweep_overview(folder, members) for folder, members in sweeps.items()}
    folder = st.selectbox("Sweep", list(names), key="runs_sweep",
                          format_func=lambda f: f"{names[f]['name']} · {', '.join(names[f]['methods'])} · "
                                                f"{names[f]['status']}")
    points = read_points_jsonl(folder)
    if points.empty:
        st.caption("No point measured yet.")
    else:
        shown = pd.DataFrame({"method": points["method"], "fraction": [percent_text(f) for f in points["fraction"]],
                              "seed": points["seed"], "training pairs": points["n_train_pairs"],
                              f"score ({points['metric'].iloc[0] or 'score'})": points["score"].astype(float).round(4),
                              "seconds": points["wall_s"], "job": points["job_id"]})
        st.dataframe(shown, hide_index=True, key="runs_sweep_points")
    members = sweeps[folder]
    with st.expander(f"Its {len(members)} job(s)"):
        def _label(job) -> str:
            point = job.config.get("point") or {}
            where = (f"{point['method']} {percent_text(point['fraction'])} seed {point['seed']}" if point
                     else job.kind)
            return f"{job.id} · {where} · {job.status}"

        job_id = st.selectbox("Job", [j.id for j in members], key="runs_sweep_job",
                              format_func={j.id: _label(j) for j in members}.get)
        job_detail(job_id, key="runs_sweep")
    unfinished = [j for j in members if j.is_active]
    if unfinished and st.button(f"Cancel the sweep's {len(unfinished)} unfinished job(s)", key="runs_sweep_cancel"):
        for job in unfinished:
            try:
                store.cancel(job.id)
            except JobError:
                pass  # finished meanwhile
        st.rerun()

# ------------------------------------------------------------------------------------ compare
with_metrics = [j for j in singles if (j.run_dir / METRICS_FILE).exists()]
# The scores compared across runs: each beside the length rule measured on the same pairs.
COMPARED = ("accuracy", "length_baseline", "length_controlled_accuracy", "log_loss", "n_heldout")
if len(with_metrics) >= 2:
    st.subheader("Compare runs")
    compare_labels = {j.id: f"{j.id} · {j.kind} · {j.status}" for j in with_metrics}
    chosen = st.multiselect("Runs to compare", list(compare_labels), default=list(compare_labels)[:3],
                            format_func=compare_labels.get, key="runs_compare")
    if chosen:
        curves = {job_id: state.run_metrics(store.get(job_id, reconcile=False).run_dir) for job_id in chosen}
        available = sorted({c for frame in curves.values() for c in frame.columns if c not in ("step", "epoch")})
        metric = st.selectbox("Metric", available, index=available.index("loss") if "loss" in available else 0,
                              key="runs_compare_metric")
        st.plotly_chart(charts.metric_curves(curves, metric, title=f"{metric} by run"), key="runs_compare_chart")
        rows = []
        for job_id in chosen:
            evaluation = state.read_json_file(store.get(job_id, reconcile=False).run_dir / EVAL_FILE) or {}
            rows.append({"run": job_id, **{k: evaluation.get(k) for k in COMPARED}})
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="runs_compare_table")
