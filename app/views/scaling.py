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
from alignscope.scaling.recommend import percent_text, pooled_points_fit, recommend
from alignscope.scaling.results import read_points_jsonl, sweep_fits
from alignscope.options import option_help, parse_list
from alignscope.scaling.measure import format_eta, sweep_progress
from alignscope.scaling.sweep import (CLEAN_METHOD, DEFAULT_METRIC, FIX_METHOD, SWEEP_FILE, SweepConfig, SweepError,
                                      default_workers, estimate_seconds, pair_count, submit_sweep)
from alignscope.train.trainset import split_pairs

st.title("Scaling")
st.caption("Quality follows an exponential plateau in data size (ISA paper): R(x) = r − (r − a)·e^(−b·x). "
           "Measure a few subset sizes per method, fit the curve, and read the smallest share of your data "
           "that reaches q of the plateau. Launch a sweep below, or upload your own points.")

data = state.require_data()
store = state.job_store()
SWEEPS = settings.home() / "sweeps"


@st.cache_data(show_spinner="Fitting the plateau…", max_entries=32)
def _fits(points_json: str, q: float, metric: str, baseline: float | None) -> tuple[dict, dict]:
    """Fits of uploaded points and their headline (the same :func:`recommend` as a sweep's)."""
    points = pd.read_json(io.StringIO(points_json), orient="split")
    lower = metric in LOWER_IS_BETTER
    options = {"q": q, "n_boot": 200, "target": "gain" if lower else "plateau", "higher_is_better": not lower}
    fits = fit_points(points, baseline=baseline, **options)
    headline = recommend(fits, metric=metric, q=q, baseline=baseline, baseline_label="the baseline you gave",
                         pool=lambda methods: pooled_points_fit(points, methods, baseline=baseline, **options))
    return fits, headline.to_dict()


@st.cache_data(show_spinner="Fitting the plateau (paired bootstrap over seeds and held-out pairs)…", max_entries=32)
def _sweep_fits(folder: str, n_points: int, q: float, metric: str) -> dict:
    # n_points keys the cache: a new point refits, a rerun without one does not.
    found = sweep_fits(folder, q=q, n_boot=200, metric=metric)
    return {"curves": found["curves"], "fits": found["fits"], "summary": found["summary"]}


def _interval_text(values, fmt: str = ".1%") -> str:
    return "" if not values else f" [{format(values[0], fmt)}, {format(values[1], fmt)}]"


def _show_headline(headline: dict) -> None:
    """The library's headline lines (:mod:`alignscope.scaling.recommend`, the same the CLI prints),
    every number beside its interval in one type size; plain text, never markdown (method names
    may come from an uploaded file)."""
    with st.container(border=True):
        st.markdown("**Recommended size**" if headline["status"] == "size" else "**No recommended size**")
        for line in headline["lines"]:
            st.text(line)


def _show_fits(curves: pd.DataFrame, fits: dict, headline: dict, *, q: float, metric: str, baseline: float | None,
               baseline_rule: str, key: str, vs_random: dict | None = None, verdicts: list | None = None,
               ranking: dict | None = None) -> None:
    """The fitted curves beside their baseline, the headline, each curve's numbers, and every method
    against random (corrected for the number of comparisons)."""
    if curves.empty:
        return
    st.plotly_chart(charts.scaling_chart(curves, fits, q=q, metric=metric, baseline=baseline,
                                         baseline_label="length rule" if metric != "length_controlled_accuracy"
                                         else "length rule / coin"), key=f"{key}_chart")
    if baseline is not None:
        st.caption(f"Dashed line: the baseline every score must beat — {baseline_rule}.")
    _show_headline(headline)
    rows = []
    for method, fit in fits.items():
        if isinstance(fit, str):
            rows.append({"method": method, "note": fit})
            continue
        row = {"method": method, "plateau r": f"{fit.r:.4f}{_interval_text(fit.r_ci95, '.4f')}",
               "no-data a": f"{fit.a:.4f}{_interval_text(fit.a_ci95, '.4f')}",
               "beats baseline": {True: "yes", False: "no", None: "cannot tell"}[fit.beats_baseline]}
        for name, target in fit.targets.items():
            x = target["recommended_fraction"]
            row[f"{q:.0%} of {name} at"] = ("—" if x is None
                                           else f"{x:.1%}{_interval_text(target['recommended_fraction_ci95'])}")
        row["intervals"] = fit.interval_method
        row["note"] = "; ".join(fit.warnings)
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{key}_table")
    if vs_random:
        st.plotly_chart(charts.vs_random_chart(vs_random, metric), key=f"{key}_vs_random")
        for line in verdicts or []:
            st.text(line)
        if ranking and ranking.get("by_fraction"):
            table = pd.DataFrame([{"share of the training pairs": percent_text(step["fraction"]),
                                   "pairs": entry.get("n_train_pairs"), "rank": entry["rank"], "method": entry["method"],
                                   "method − random": f"{entry['difference']:+.4f}" + _interval_text(entry["ci95"], "+.4f"),
                                   "verdict (Holm-corrected)": entry["verdict"]}
                                  for step in ranking["by_fraction"] for entry in step["methods"]])
            with st.expander("Every method ranked by its difference to random at each fraction"):
                st.dataframe(table, hide_index=True, key=f"{key}_ranking")
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
            _show_fits(found["curves"], found["fits"], summary["recommendation"], q=q, metric=metric,
                       baseline=summary["baseline"], baseline_rule=summary["baseline_rule"], key="sweep",
                       vs_random=summary["vs_random"], verdicts=summary["verdicts"], ranking=summary.get("ranking"))

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
            fits, headline = _fits(uploaded.to_json(orient="split"), q, metric, baseline)
            _show_fits(uploaded, fits, headline, q=q, metric=metric, baseline=baseline,
                       baseline_rule="the baseline you gave", key="upload")
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
        methods = cols[0].multiselect("Methods", [m for m in METHODS if m != "llm"] + [CLEAN_METHOD, FIX_METHOD],
                                      default=defaults.methods, key="sweep_methods",
                                      help="clean: drop the pairs the audit flags (suspected flips, near-duplicates, "
                                           "outliers, identical answers), then a random share of the rest; fix: keep "
                                           "every pair but swap the labels of the suspected flips (probe evaluator)")
        fractions = cols[1].text_input("Fractions (0–1, comma-separated)",
                                       ",".join(f"{x:g}" for x in defaults.fractions), key="sweep_fractions",
                                       help="shares of the training pairs (the pairs left after holding out "
                                            f"{defaults.test_fraction:.0%}); every method trains on that many pairs")
        seeds = cols[2].text_input("Seeds", ",".join(map(str, defaults.seeds)), key="sweep_seeds")
        n_pool = data.n_pairs - len(split_pairs(data.n_pairs, defaults.test_fraction, defaults.split_seed)[1])
        try:
            asked = sorted({f for f in parse_list(fractions, float) if 0 < f <= 1})
            st.caption(f"In pairs, of the {n_pool:,} training pairs: "
                       + ", ".join(f"{percent_text(f)} ≈ {pair_count(f, n_pool):,}" for f in asked) + ".")
        except ValueError:
            pass  # the launch button says what is wrong with the list
        cols = st.columns(2)
        eval_encoder = cols[0].text_input("Evaluation encoder (probe)", defaults.eval_encoder or "",
                                          key="sweep_eval_encoder", help=option_help(SweepConfig, "eval_encoder"))
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
            st.caption(f"{config.n_points()} points ({len(config.units())} rankings) on {data.n_pairs:,} pairs, "
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
            st.session_state["scaling_launched"] = (f"Started sweep {out.name}: {config.n_points()} points by "
                                                    f"{len(jobs)} worker(s) (jobs {', '.join(jobs)}); the first tab "
                                                    "shows the points as they come, the Runs page the workers.")
            st.rerun()
        except (SweepError, ValueError) as err:
            st.error(f"Cannot launch: {err}")
    if "scaling_launched" in st.session_state:
        st.success(st.session_state.pop("scaling_launched"))
