"""Scaling page: how many pairs are enough. Launch a sweep (every method × fraction × seed as a
job), watch the points arrive, read the fitted plateau per method and the recommended subset size
for a chosen share q of the plateau; or fit points measured elsewhere (CSV upload)."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from alignscope import settings
from alignscope.app import analysis, charts, state
from alignscope.data.readers import DataError
from alignscope.evaluate.metrics import LOWER_IS_BETTER, METRICS
from alignscope.scaling.fit import ScalingError, fit_points, read_points
from alignscope.scaling.results import read_points_jsonl, sweep_fits
from alignscope.options import option_help, parse_list
from alignscope.scaling.measure import format_eta, sweep_progress
from alignscope.scaling.sweep import (CLEAN_METHOD, DEFAULT_METRIC, SWEEP_FILE, SweepConfig, SweepError,
                                      default_workers, estimate_seconds, submit_sweep)

st.title("Scaling")
st.caption("Quality follows an exponential plateau in data size (ISA paper): R(x) = r − (r − a)·e^(−b·x). "
           "Measure a few subset sizes per method, fit the curve, and read the smallest share of your data "
           "that reaches q of the plateau. Launch a sweep below, or upload your own points.")

data = state.require_data()
store = state.job_store()
SWEEPS = settings.home() / "sweeps"


@st.cache_data(show_spinner="Fitting the plateau…", max_entries=32)
def _fits(points_json: str, q: float, metric: str, baseline: float | None) -> dict:
    points = pd.read_json(io.StringIO(points_json), orient="split")
    lower = metric in LOWER_IS_BETTER
    return fit_points(points, q=q, n_boot=200, target="gain" if lower else "plateau", higher_is_better=not lower,
                      baseline=baseline)


@st.cache_data(show_spinner="Fitting the plateau (paired bootstrap over seeds and held-out pairs)…", max_entries=32)
def _sweep_fits(folder: str, n_points: int, q: float, metric: str) -> dict:
    # n_points keys the cache: a new point refits, a rerun without one does not.
    found = sweep_fits(folder, q=q, n_boot=200, metric=metric)
    return {"curves": found["curves"], "fits": found["fits"], "summary": found["summary"]}


def _interval_text(values, fmt: str = ".1%") -> str:
    return "" if not values else f" [{format(values[0], fmt)}, {format(values[1], fmt)}]"


def _show_fits(curves: pd.DataFrame, fits: dict, *, q: float, metric: str, baseline: float | None,
               baseline_rule: str, key: str, vs_random: dict | None = None, verdicts: list | None = None) -> None:
    """The fitted curves beside their baseline, both recommendation rules side by side, and every
    method against random. Recommends nothing when no plateau beats the baseline."""
    if curves.empty:
        return
    st.plotly_chart(charts.scaling_chart(curves, fits, q=q, metric=metric, baseline=baseline,
                                         baseline_label="length rule" if metric != "length_controlled_accuracy"
                                         else "length rule / coin"), key=f"{key}_chart")
    if baseline is not None:
        st.caption(f"Dashed line: the baseline every score must beat — {baseline_rule}.")
    fitted = {m: f for m, f in fits.items() if not isinstance(f, str)}
    beating = {m: f for m, f in fitted.items() if f.beats_baseline}
    undecided = {m: f for m, f in beating.items() if not f.decisive}
    beating = {m: f for m, f in beating.items() if f.decisive}
    lower = metric in LOWER_IS_BETTER
    if fitted and not beating and not undecided:
        unknown = all(f.beats_baseline is None for f in fitted.values())
        st.warning("**No recommendation.** " + (
            "Without intervals it cannot be told whether any plateau beats the baseline." if unknown and baseline is not None
            else f"No method's plateau beats the baseline ({baseline:.3f}): this evaluator does not measure more than "
                 "the trivial rule on these pairs, so it cannot say how much data is enough. Try another metric, "
                 "another evaluation encoder, or a trained evaluator." if baseline is not None
            else "Give a baseline to compare the plateaus with."), icon=":material/warning:")
    elif undecided and not beating:
        st.warning("**No recommendation.** " + "; ".join(
            f"{m}: the plateau beats the baseline, but its recommended share's interval is "
            f"{f.recommended_fraction_ci95[0]:.0%}–{f.recommended_fraction_ci95[1]:.0%}" for m, f in undecided.items())
            + ". These points cannot tell how much data is enough: measure more seeds or more held-out pairs.",
            icon=":material/warning:")
    elif beating:
        best_method, best = (min if lower else max)(beating.items(), key=lambda item: item[1].r)
        st.subheader(f"{best_method}: the best plateau that beats the baseline")
        cols = st.columns(3)
        cols[0].metric("Plateau r", f"{best.r:.4f}", help=f"95 % interval{_interval_text(best.r_ci95, '.4f')}; "
                       f"baseline {baseline:.4f}" if baseline is not None else None)
        for col, (name, target) in zip(cols[1:], best.targets.items()):
            x = target["recommended_fraction"]
            col.metric(f"{q:.0%} of the {name}", "—" if x is None else f"{x:.1%}",
                       help=target["rule"] + _interval_text(target["recommended_fraction_ci95"]))
        st.caption("; ".join(f"**{q:.0%} of the {name}**: {target['rule']}" for name, target in best.targets.items())
                   + ". Both rules are shown: they answer different questions and can differ a lot when the score "
                     "starts high.")
    rows = []
    for method, fit in fits.items():
        if isinstance(fit, str):
            rows.append({"method": method, "note": fit})
            continue
        row = {"method": method, "plateau r": f"{fit.r:.4f}{_interval_text(fit.r_ci95, '.4f')}",
               "no-data a": round(fit.a, 4),
               "beats baseline": {True: "yes", False: "no", None: "cannot tell"}[fit.beats_baseline]}
        for name, target in fit.targets.items():
            x = target["recommended_fraction"]
            row[f"{q:.0%} of {name} at"] = ("—" if x is None or fit.beats_baseline is False
                                           else f"{x:.1%}{_interval_text(target['recommended_fraction_ci95'])}")
        row["intervals"] = fit.interval_method
        row["note"] = "; ".join(fit.warnings)
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{key}_table")
    if vs_random:
        st.plotly_chart(charts.vs_random_chart(vs_random, metric), key=f"{key}_vs_random")
        for line in verdicts or []:
            st.text(line)
    counts = curves["method"].value_counts(sort=False)
    st.caption(f"{len(curves)} points on the curves ({', '.join(f'{m}: {n}' for m, n in counts.items())}).")


rule = st.columns([3, 2])
q = rule[0].slider("Share to reach (q)", 0.80, 0.99, 0.95, 0.01, key="scaling_q",
                   help="The recommendation is the smallest fraction whose fitted score reaches the target; both "
                        "targets (q of the plateau, q of the gain) are shown side by side.")
metric = rule[1].selectbox("Metric", list(METRICS), index=list(METRICS).index(DEFAULT_METRIC), key="scaling_metric",
                           format_func=charts.METRIC_LABELS.get,
                           help="Accuracy on these data sets mostly measures length; the length-controlled accuracy "
                                "is what length alone cannot reach (0.5); log loss resolves what accuracy hides.")

# ------------------------------------------------------------------------------------ a sweep
sweeps = []
if SWEEPS.exists():
    for folder in SWEEPS.iterdir():
        try:
            recorded = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if recorded.get("data", {}).get("fingerprint") == data.fingerprint:
            sweeps.append((recorded.get("created_at", 0), folder, recorded))
sweeps.sort(key=lambda item: item[0], reverse=True)

tab_sweep, tab_new, tab_upload = st.tabs(["Sweeps of this data set", "Launch a sweep", "Fit your own points"])
with tab_sweep:
    if not sweeps:
        st.info("No sweep on this data set yet: launch one in the next tab (the probe evaluator takes seconds "
                "per point), or fit points you measured elsewhere in the last tab.")
    else:
        labels = {str(folder): f"{folder.name} · {', '.join(SweepConfig.from_dict(rec['config']).curve_methods())} · "
                               f"{rec['config']['evaluator']} · {rec.get('n_points', len(rec.get('jobs', [])))} points"
                  for _, folder, rec in sweeps}
        if st.session_state.get("scaling_next_sweep") in labels:  # just launched: show it, not the last one
            st.session_state["scaling_sweep"] = st.session_state.pop("scaling_next_sweep")
        picked = st.selectbox("Sweep", list(labels), format_func=labels.get, key="scaling_sweep")
        recorded = next(rec for _, folder, rec in sweeps if str(folder) == picked)

        @st.fragment(run_every=3)
        def live_sweep(folder: str, job_ids: list[str], n_points: int) -> None:
            points = read_points_jsonl(folder)
            jobs = [store.get(job_id) for job_id in job_ids]
            failed = [j for j in jobs if j.status in ("failed", "cancelled")]
            running = [j for j in jobs if not j.is_terminal]
            _, eta = sweep_progress(Path(folder), n_points)
            st.progress(min(1.0, len(points) / max(1, n_points)),
                        text=(eta if running else f"{len(points)} of {n_points} points measured")
                        + (f" · {len(failed)} worker(s) failed" if failed else ""))
            if failed:
                st.error(f"Worker {failed[0].id} {failed[0].status}: {failed[0].error or ''} (its log is on the "
                         "Runs page)")
            if points.empty:
                st.caption("Points appear here as they are measured.")
                return
            found = _sweep_fits(folder, len(points), q, metric)
            summary = found["summary"]
            if summary.get("circular"):
                st.info(f"The selectors and the probe both use {summary['selection_encoder']} features: the score may "
                        "favour what the selector saw (launch with another evaluation encoder to judge fairly).")
            _show_fits(found["curves"], found["fits"], q=q, metric=metric, baseline=summary["baseline"],
                       baseline_rule=summary["baseline_rule"], key="sweep", vs_random=summary["vs_random"],
                       verdicts=summary["verdicts"])

        live_sweep(picked, recorded.get("jobs", []), int(recorded.get("n_points", len(recorded.get("jobs", [])))))

# The upload tab renders before the launch tab: the launch tab may st.stop() (no embeddings yet).
with tab_upload:
    st.caption("A CSV with `fraction` (0–1) or `percent` (0–100), `score`, and optionally `method` and `seed`.")
    upload = st.file_uploader("Points CSV", type=["csv"], key="scaling_upload")
    if upload is not None:
        folder = settings.home() / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"points-{int(time.time() * 1000)}.csv"
        path.write_bytes(upload.getvalue())
        baseline_text = st.text_input("Baseline to beat (optional)", "", key="scaling_upload_baseline",
                                      help="e.g. the length rule's accuracy on the same pairs; a 'baseline' column works too")
        try:
            baseline = None
            if baseline_text.strip():
                try:
                    baseline = float(baseline_text)
                except ValueError:
                    raise ScalingError(f"the baseline {baseline_text.strip()!r} is not a number") from None
            uploaded = read_points(path)
            if baseline is None and "baseline" in uploaded.columns and uploaded["baseline"].notna().any():
                baseline = float(uploaded["baseline"].dropna().mean())
            _show_fits(uploaded, _fits(uploaded.to_json(orient="split"), q, metric, baseline), q=q, metric=metric,
                       baseline=baseline, baseline_rule="the baseline you gave", key="upload")
        except (DataError, ScalingError) as err:
            st.error(str(err).replace(str(path), upload.name))
        finally:
            path.unlink(missing_ok=True)

with tab_new:
    from alignscope.select.selectors import METHODS

    st.caption("Subsets: every (method, fraction, seed) is a point, measured by a few workers that rank each method "
               "once and cut the ranking at every fraction; fraction 1.0 is all pairs. "
               "Checkpoints (the ISA paper's own measurement): one DPO/KTO run per seed on all the training pairs, "
               "evaluated at 10/25/50/75/100 % of the run. "
               "Probe: a linear reward model on frozen embeddings, seconds per point, a proxy. DPO/KTO: a real "
               "TRL run per point (the tiny model for plumbing, smollm2-135m on a GPU). For a Ray cluster use "
               "`alignscope sweep … --executor ray`.")
    defaults = SweepConfig()  # the widgets start at the sweep's own defaults (one declaration)
    analysis.require_embeddings(data, defaults.encoder, "completion", "scaling")
    # Not an st.form: Enter in a text field submits a form, and nobody means "launch 50 jobs" by Enter.
    with st.container(border=True):
        cols = st.columns(3)
        methods = cols[0].multiselect("Methods", [m for m in METHODS if m != "llm"] + [CLEAN_METHOD],
                                      default=defaults.methods, key="sweep_methods",
                                      help="clean: drop the pairs the audit flags (suspected flips, near-duplicates, "
                                           "outliers, identical answers), then a random share of the rest")
        fractions = cols[1].text_input("Fractions (0–1, comma-separated)",
                                       ",".join(f"{x:g}" for x in defaults.fractions), key="sweep_fractions")
        seeds = cols[2].text_input("Seeds", ",".join(map(str, defaults.seeds)), key="sweep_seeds")
        cols = st.columns(2)
        eval_encoder = cols[0].text_input("Evaluation encoder (probe)", "", key="sweep_eval_encoder",
                                          help=option_help(SweepConfig, "eval_encoder") + ": the judge then sees "
                                               "what the selector saw")
        sweep_metric = cols[1].selectbox("Curve metric", list(METRICS), index=list(METRICS).index(defaults.metric),
                                         format_func=charts.METRIC_LABELS.get, key="sweep_metric")
        cols = st.columns(4)
        mode = cols[0].radio("Measurement", ["subsets", "checkpoints"], horizontal=True, key="sweep_mode",
                             help="checkpoints needs the DPO or KTO evaluator; it ignores methods and fractions")
        evaluators = ["probe", "dpo", "kto"]
        evaluator = cols[1].radio("Evaluator", evaluators, index=evaluators.index(defaults.evaluator),
                                  horizontal=True, key="sweep_evaluator")
        max_steps = cols[2].number_input("Training steps per run (DPO/KTO; 0 = one epoch)", 0, 100_000,
                                         defaults.max_steps or 0, key="sweep_steps")
        workers = cols[3].number_input("Parallel workers", 1, 64, default_workers(), key="sweep_workers",
                                       help="long-lived workers that share the points (each holds the data and "
                                            "features in memory)")
        try:
            config = SweepConfig(methods=list(methods), fractions=parse_list(fractions, float),
                                 seeds=parse_list(seeds, int), evaluator=evaluator,
                                 max_steps=int(max_steps) or None, mode=mode, metric=sweep_metric,
                                 target="gain" if sweep_metric in LOWER_IS_BETTER else "plateau",
                                 eval_encoder=eval_encoder.strip() or None)
            config.validate()
            problem = None
        except (SweepError, ValueError) as err:
            config, problem = None, str(err)
        if config is not None:
            seconds = estimate_seconds(config, data.n_pairs, int(workers))
            st.caption(f"{len(config.points())} points ({len(config.units())} rankings) on {data.n_pairs:,} pairs, "
                       f"{min(int(workers), len(config.units()))} worker(s): "
                       + (f"about {format_eta(seconds)} (from the sweeps measured on this machine)" if seconds
                          else "no sweep measured on this machine yet; the ETA appears with the first points"))
        launched = st.button("Launch the sweep", type="primary", key="sweep_launch")
    if launched:
        try:
            if problem is not None:
                raise SweepError(problem)
            out = SWEEPS / time.strftime("%Y%m%d-%H%M%S")
            jobs = submit_sweep(data, config, out, workers=int(workers), store=store)
            # Rerun so that the first tab lists the new sweep; the message survives in the session.
            st.session_state["scaling_next_sweep"] = str(out)
            st.session_state["scaling_launched"] = (f"Started sweep {out.name}: {len(config.points())} points by "
                                                    f"{len(jobs)} worker(s) (jobs {', '.join(jobs)}); the first tab "
                                                    "shows the points as they come, the Runs page the workers.")
            st.rerun()
        except (SweepError, ValueError) as err:
            st.error(f"Cannot launch: {err}")
    if "scaling_launched" in st.session_state:
        st.success(st.session_state.pop("scaling_launched"))
