"""Scaling sweep on the AlpacaEval pairs (issue 6's experiment): probe evaluator on CPU.

    python -m benchmarks.bench_scaling [--methods isa,random,density,kcenter]
        [--fractions 0.01,0.02,0.05,0.1,0.25,0.5,1.0] [--seeds 0,1,2] [--runs local:1,local:2,ray:2]

Runs ``alignscope sweep`` once per executor:workers entry of ``--runs`` on the same grid (each
into its own folder under ``$ALIGNSCOPE_HOME/bench_scaling``), records the wall time of each and the
speed-up of 2 workers over 1, and the fitted plateau per method (r, a, b with intervals, the
recommended fraction for q = 0.95 of the plateau, and of the gain) from the first run. Needs ../shared/data/alpaca_eval_pairs.jsonl.gz
(skipped when absent) and its cached MiniLM embeddings (computed by the first run otherwise).
Writes ``results/scaling_alpaca.json`` and ``results/scaling_alpaca.png``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.common import RESULTS, SHARED_DATA, save_png, write_result

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scaling")
    parser.add_argument("--methods", default="isa,random,density,kcenter")
    parser.add_argument("--fractions", default="0.01,0.02,0.05,0.1,0.25,0.5,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", default="local:1,local:2,ray:2")
    parser.add_argument("--merge", action="store_true",
                        help="keep the runs already in results/scaling_alpaca.json that this call does not redo")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return
    from alignscope import settings

    base = settings.home() / "bench_scaling"
    runs = {}
    first = None
    for entry in args.runs.split(","):
        executor, workers = entry.split(":")
        out = base / f"{executor}-{workers}"
        command = [sys.executable, "-m", "alignscope.cli", "sweep", str(DATA), "--methods", args.methods,
                   "--fractions", args.fractions, "--seeds", args.seeds, "--evaluator", "probe",
                   "--executor", executor, "--workers", workers, "--out", str(out), "--force", "--json"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode not in (0, 1):
            raise SystemExit(f"{entry} failed:\n{done.stderr[-3000:]}")
        summary = json.loads(done.stdout)
        runs[entry] = {"wall_s": round(wall, 1), "n_jobs": summary["n_jobs"], "n_failed": summary["n_failed"]}
        print(f"{entry}: {runs[entry]}", flush=True)
        first = first or (out, summary["fit"])
    previous = RESULTS / "scaling_alpaca.json"
    if args.merge and previous.exists():
        earlier = json.loads(previous.read_text(encoding="utf-8"))["figures"]
        if (earlier["methods"], earlier["fractions"], earlier["seeds"]) == (args.methods, args.fractions, args.seeds):
            runs = {**earlier["runs"], **runs}
    speedups = {}
    for executor in ("local", "ray"):
        if f"{executor}:1" in runs and f"{executor}:2" in runs:
            speedups[executor] = round(runs[f"{executor}:1"]["wall_s"] / runs[f"{executor}:2"]["wall_s"], 3)
    if "local:1" in runs and "ray:2" in runs:
        speedups["ray:2 over local:1"] = round(runs["local:1"]["wall_s"] / runs["ray:2"]["wall_s"], 3)
    out, fit = first
    import pandas as pd

    from alignscope.app.charts import scaling_chart
    from alignscope.scaling import fit_points

    points = pd.read_csv(out / "points.csv")
    figure = scaling_chart(points, fit_points(points, q=0.95, n_boot=200), q=0.95)
    figure.update_layout(title="AlpacaEval pairs: probe accuracy vs fraction, fitted plateau per method")
    png = save_png(figure, RESULTS / "scaling_alpaca.png")
    write_result("scaling_alpaca", {"data": DATA.name, "methods": args.methods, "fractions": args.fractions,
                                    "seeds": args.seeds, "evaluator": "probe (a proxy)", "runs": runs,
                                    "speedup": speedups, "fit": fit, "fit_gain": _gain_recommendations(points),
                                    "png": png,
                                    "points_csv": str(out / "points.csv")})


def _gain_recommendations(points) -> dict:
    """The same curves under the 'q of the gain' rule: probe accuracy has a high floor, where the
    q·r rule answers 0 % for flat methods."""
    from alignscope.scaling import fit_points

    fits = fit_points(points, q=0.95, n_boot=200, target="gain")
    return {method: ({"error": fit} if isinstance(fit, str) else
                     {"recommended_fraction": fit.recommended_fraction, "ci95": fit.recommended_fraction_ci95,
                      "r": fit.r, "a": fit.a, "b": fit.b})
            for method, fit in fits.items()}


if __name__ == "__main__":
    main()
