"""The headline answer on real data: a full sweep with every selection method, probe evaluator on CPU.

    python -m benchmarks.bench_scaling [--data alpaca|hh|PATH] [--sample 0] [--encoder static]
        [--eval-encoder lsa] [--methods random,isa,density,kcenter,clean,length,margin,rds]
        [--fractions 0.01,0.02,0.05,0.1,0.25,0.5,1.0] [--seeds 0,1,2] [--workers 2] [--name NAME]

One ``alignscope sweep`` on all the pairs of a shared data set (``--sample N``: a seeded sample;
skipped when ../shared/data is absent): the selectors rank with ``--encoder``, the probe judges with
``--eval-encoder`` (other features, so the score is not circular), every method trains on the same
number of pairs at each fraction. The sweep is then fitted in each metric (accuracy beside the length rule,
length-controlled accuracy beside 0.5, log loss beside the length rule's), with intervals from the
paired bootstrap over seeds and held-out pairs, and every method is compared with random at each
fraction. Writes ``results/scaling_alpaca.json`` and ``results/scaling_alpaca.png``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import RESULTS, SHARED_DATA, save_png, write_result

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scaling")
    parser.add_argument("--data", default="alpaca", help="alpaca, hh or a path")
    parser.add_argument("--sample", type=int, default=0, help="pairs drawn (seed 0) from the data; 0 = all")
    parser.add_argument("--encoder", default="static")
    parser.add_argument("--eval-encoder", default="lsa")
    parser.add_argument("--methods", default="random,isa,density,kcenter,clean,length,margin,rds")
    parser.add_argument("--fractions", default="0.01,0.02,0.05,0.1,0.25,0.5,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--name", default="scaling_alpaca")
    args = parser.parse_args(argv)
    from pathlib import Path

    source = Path({"alpaca": str(DATA), "hh": str(SHARED_DATA / "hh_harmless_test.jsonl.gz")}.get(args.data, args.data))
    if not source.exists():
        print(f"skipped: {source} is absent")
        return
    from alignscope import settings
    from alignscope.data.preferences import load_preferences
    from alignscope.scaling.results import fit_sweep, sweep_fits

    base = settings.home() / "bench_scaling"
    base.mkdir(parents=True, exist_ok=True)
    data_path = source
    if args.sample:
        data = load_preferences(str(source))
        rows = np.sort(np.random.default_rng(0).choice(len(data), size=min(args.sample, len(data)), replace=False))
        data_path = base / f"{source.name.split('.')[0]}_sample{len(rows)}.parquet"
        if not data_path.exists():
            data.frame.iloc[rows].reset_index(drop=True).to_parquet(data_path, index=False)
    out = base / args.name
    command = [sys.executable, "-m", "alignscope.cli", "sweep", str(data_path), "--methods", args.methods,
               "--fractions", args.fractions, "--seeds", args.seeds, "--evaluator", "probe", "--encoder", args.encoder,
               "--eval-encoder", args.eval_encoder, "--workers", args.workers, "--out", str(out), "--force", "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"the sweep failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    fits = {metric: fit_sweep(out, n_boot=300, metric=metric)
            for metric in ("accuracy", "log_loss", "length_controlled_accuracy")}
    from alignscope.app.charts import scaling_chart

    found = sweep_fits(out, n_boot=300)
    figure = scaling_chart(found["curves"], found["fits"], q=0.95, metric=found["summary"]["metric"],
                           baseline=found["summary"]["baseline"], baseline_label="length rule / coin")
    figure.update_layout(title=f"{source.name.split('.')[0]} ({len(load_preferences(str(data_path))):,} pairs): "
                               f"probe on {args.eval_encoder} features, selectors on {args.encoder}")
    png = save_png(figure, RESULTS / f"{args.name}.png")
    write_result(args.name, {"data": source.name, "sample": args.sample, "encoder": args.encoder,
                             "eval_encoder": args.eval_encoder, "methods": args.methods, "fractions": args.fractions,
                             "seeds": args.seeds, "evaluator": "probe (a proxy)", "workers": args.workers,
                             "wall_s": round(wall, 1), "n_points": summary["n_points"], "n_measured": summary["n_measured"],
                             "n_workers": summary["n_jobs"], "n_failed": summary["n_failed"],
                             "rank_s_by_method": _rank_seconds(out),
                             "fits": fits, "png": png})
    for metric, fit in fits.items():
        print(f"{metric}: baseline {fit['baseline']}")
        for line in fit["recommendation"]["lines"] + fit["verdicts"]:
            print("  " + line)


def _rank_seconds(out) -> dict:
    """Seconds each method's rankings took in all (from the sweep's units.jsonl)."""
    seconds: dict = {}
    path = out / "units.jsonl"
    for line in (path.read_text().splitlines() if path.exists() else []):
        unit = json.loads(line)
        seconds[unit["method"]] = round(seconds.get(unit["method"], 0.0) + unit["rank_s"], 1)
    return seconds


if __name__ == "__main__":
    main()
