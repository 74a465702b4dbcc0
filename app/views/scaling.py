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
from alignscope.readers import DataError
from alignscope.scaling import ScalingError, fit_points, read_points
from alignscope.sweep import SWEEP_FILE, SweepConfig, SweepError, curve_points, read_points_jsonl, submit_sweep

st.title("Scaling")
st.caption("Quality follows an exponential plateau in data size (ISA paper): R(x) = r − (r − a)·e^(−b·x). "
           "Measure a few subset sizes per method, fit the curve, and read the smallest share of your data "
           "that reaches q of the plateau. Launch a sweep below, or upload your own points.")

data = state.require_data()
store = state.job_store()
SWEEPS = settings.home() / "sweeps"


@st.cache_data(show_spinner="Fitting the plateau…", max_entries=32)
def _fits(points_json: str, q: float, target: str) -> dict:
    points = pd.read_json(io.StringIO(points_json), orient="split")
    return fit_points(points, q=q, n_boot=200, target=target)


def _show_fits(points: pd.DataFrame, q: float, key: str) -> None:
    if points.empty:
        return
    fits = _fits(points[["method", "fraction", "score"]].to_json(orient="split"), q, target)
    st.plotly_chart(charts.scaling_chart(points, fits, q=q), key=f"{key}_chart")
    rows = []
    for method, fit in fits.items():
        if isinstance(fit, str):
            rows.append({"method": method, "note": fit})
            continue
        interval = fit.recommended_fraction_ci95
        rows.append({"method": method, "plateau r": round(fit.r, 4), "no-data a": round(fit.a, 4),
                     "growth b": round(fit.b, 2),
                     f"{q:.0%} of {target} at": None if fit.recommended_fraction is None else f"{fit.recommended_fraction:.1%}",
                     "95 % interval": "" if not interval else f"{interval[0]:.1%} – {interval[1]:.1%}",
                     "saving": None if fit.saving is None else f"{fit.saving:.1%} of the data",
                     "note": "; ".join(fit.warnings)})
    best = [f for f in fits.values() if not isinstance(f, str) and f.recommended_fraction is not None]
    if best:
        top = min(best, key=lambda f: f.recommended_fraction)
        cols = st.columns(3)
        cols[0].metric(f"Smallest subset reaching {q:.0%} of its {target}", f"{top.recommended_fraction:.1%}",
                       help=f"method {top.method}; x* = " + ("−ln(1 − q) / b" if target == "gain"
                                                            else "ln((r − a) / ((1 − q)·r)) / b"))
        cols[1].metric("Data you can skip", f"{top.saving:.1%}",
                       help=f"≈ {top.saving * data.n_pairs:,.0f} of {data.n_pairs:,} pairs of the active data")
        cols[2].metric("Its plateau", f"{top.r:.4f}")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{key}_table")
    counts = points["method"].value_counts(sort=False)
    st.caption(f"{len(points)} points fitted ({', '.join(f'{m}: {n}' for m, n in counts.items())}).")


rule = st.columns([3, 2])
q = rule[0].slider("Share to reach (q)", 0.80, 0.99, 0.95, 0.01, key="scaling_q",
                   help="The recommendation is the smallest fraction whose fitted score reaches the target.")
target = rule[1].radio("Target", ["plateau", "gain"], horizontal=True, key="scaling_target",
                       format_func={"plateau": "q of the plateau: q·r", "gain": "q of the gain: a + q·(r − a)"}.get,
                       help="With a high no-data score (accuracy near its plateau already), q·r is reached at 0 %; "
                            "q of the gain asks how much data gets most of the improvement.")

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
        labels = {str(folder): f"{folder.name} · {', '.join(SweepConfig(**rec['config']).curve_methods())} · "
                               f"{rec['config']['evaluator']} · {len(rec['jobs'])} jobs" for _, folder, rec in sweeps}
        picked = st.selectbox("Sweep", list(labels), format_func=labels.get, key="scaling_sweep")
        recorded = next(rec for _, folder, rec in sweeps if str(folder) == picked)

        @st.fragment(run_every=3)
        def live_sweep(folder: str, job_ids: list[str]) -> None:
            points = read_points_jsonl(folder)
            jobs = [store.get(job_id) for job_id in job_ids]
            done = sum(j.is_terminal for j in jobs)
            failed = [j for j in jobs if j.status in ("failed", "cancelled")]
            st.progress(done / max(1, len(jobs)), text=f"{len(points)} of {len(jobs)} points measured"
                        + (f" · {len(failed)} failed" if failed else ""))
            if failed:
                st.error(f"Point {failed[0].config.get('point')} {failed[0].status}: {failed[0].error or ''}")
            if points.empty:
                st.caption("Points appear here as their jobs finish.")
                return
            _show_fits(curve_points(points, SweepConfig(**recorded["config"]).curve_methods()), q, key="sweep")

        live_sweep(picked, recorded["jobs"])

# The upload tab renders before the launch tab: the launch tab may st.stop() (no embeddings yet).
with tab_upload:
    st.caption("A CSV with `fraction` (0–1) or `percent` (0–100), `score`, and optionally `method` and `seed`.")
    upload = st.file_uploader("Points CSV", type=["csv"], key="scaling_upload")
    if upload is not None:
        folder = settings.home() / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"points-{int(time.time() * 1000)}.csv"
        path.write_bytes(upload.getvalue())
        try:
            _show_fits(read_points(path), q, key="upload")
        except (DataError, ScalingError) as err:
            st.error(str(err).replace(str(path), upload.name))
        finally:
            path.unlink(missing_ok=True)

with tab_new:
    from alignscope.select import METHODS

    st.caption("Subsets: every (method, fraction, seed) becomes a job on the Runs page; fraction 1.0 is all pairs. "
               "Checkpoints (the ISA paper's own measurement): one DPO/KTO run per seed on all the training pairs, "
               "evaluated at 10/25/50/75/100 % of the run. "
               "Probe: a linear reward model on frozen embeddings, seconds per point, a proxy. DPO/KTO: a real "
               "TRL run per point (the tiny model for plumbing, smollm2-135m on a GPU). For a Ray cluster use "
               "`alignscope sweep … --executor ray`.")
    analysis.require_embedding(data, "minilm", "completion", "scaling")
    with st.form("sweep_form"):
        cols = st.columns(3)
        methods = cols[0].multiselect("Methods", [m for m in METHODS if m != "llm"], default=["isa", "random"],
                                      key="sweep_methods")
        fractions = cols[1].text_input("Fractions (0–1, comma-separated)", "0.01,0.02,0.05,0.1,0.25,0.5,1.0",
                                       key="sweep_fractions")
        seeds = cols[2].text_input("Seeds", "0,1,2", key="sweep_seeds")
        cols = st.columns(4)
        mode = cols[0].radio("Measurement", ["subsets", "checkpoints"], horizontal=True, key="sweep_mode",
                             help="checkpoints needs the DPO or KTO evaluator; it ignores methods and fractions")
        evaluator = cols[1].radio("Evaluator", ["probe", "dpo", "kto"], horizontal=True, key="sweep_evaluator")
        max_steps = cols[2].number_input("Training steps per run (DPO/KTO; 0 = one epoch)", 0, 100_000, 20,
                                         key="sweep_steps")
        workers = cols[3].number_input("Parallel workers", 1, 64, 2, key="sweep_workers")
        launched = st.form_submit_button("Launch the sweep", type="primary")
    if launched:
        try:
            config = SweepConfig(methods=list(methods), fractions=[float(f) for f in fractions.split(",") if f.strip()],
                                 seeds=[int(s) for s in seeds.split(",") if s.strip()], evaluator=evaluator,
                                 max_steps=int(max_steps) or None, mode=mode)
            out = SWEEPS / time.strftime("%Y%m%d-%H%M%S")
            jobs = submit_sweep(data, config, out, workers=int(workers), store=store)
            # Rerun so that the first tab lists the new sweep; the message survives in the session.
            st.session_state["scaling_launched"] = f"Launched {len(jobs)} points: see the first tab (and the Runs page)."
            st.rerun()
        except (SweepError, ValueError) as err:
            st.error(f"Cannot launch: {err}")
    if "scaling_launched" in st.session_state:
        st.success(st.session_state.pop("scaling_launched"))
