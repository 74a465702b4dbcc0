"""How long a sweep takes and where the time goes: ``python -m benchmarks.bench_sweep [--sample 4000]
[--full] [--ray]``.

In one run, on a seeded sample of the shared AlpacaEval pairs (default 4,000 pairs), the same sweep
(random, isa, density, kcenter, clean × the default fractions × 3 seeds, probe evaluator) is measured
three ways, each in a fresh home with the embeddings already cached:

* ``shared``: the product's engine, 2 long-lived ``sweep_worker`` jobs (rank once per method and
  seed, cut at every fraction);
* ``per_point``: the engine of earlier versions, one ``sweep_point`` job per point, 2 at a time,
  each loading the data and features and ranking again (the obvious alternative);
* ``ray`` (``--ray``): the shared engine on a local Ray instance with 2 workers.

Per run: wall seconds, seconds per point, and for the shared engine where they go (the workers'
data and feature load, each unit's ranking, the points' measurement, from ``units.jsonl`` and the
workers' records). ``--full`` adds the shared engine on all 61,952 pairs from an EMPTY home (the
embeddings, the lsa judge and the audit computed on the way; the static model's one-time
distillation reported apart) and again with everything cached: the targets are 15 and 5 minutes.
Figures: ``benchmarks/results/sweep.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SHARED_DATA, write_result

METHODS = "random,isa,density,kcenter,clean"
DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


def _sweep(data: Path, home: Path, out: Path, *extra: str) -> dict:
    """One ``alignscope sweep`` (fresh output folder) in ``home``; wall time and the fit summary."""
    env = {**os.environ, "ALIGNSCOPE_HOME": str(home)}
    command = [sys.executable, "-m", "alignscope.cli", "sweep", str(data), "--methods", METHODS, "--seeds", "0,1,2",
               "--out", str(out), "--force", "--json", *extra]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    return {"wall_s": round(wall, 1), "n_points": summary["n_points"], "n_measured": summary["n_measured"],
            "s_per_point": round(wall / max(1, summary["n_measured"]), 2), "workers": summary["workers"],
            "breakdown": _breakdown(out, home)}


def _breakdown(out: Path, home: Path) -> dict:
    """Where a shared sweep's worker time went (empty for the per-point engine)."""
    units = [json.loads(line) for line in (out / "units.jsonl").read_text().splitlines()] if (
        out / "units.jsonl").exists() else []
    rates = home / "cache" / "sweep_rates.jsonl"
    workers = [json.loads(line) for line in rates.read_text().splitlines()][-4:] if rates.exists() else []
    by_method: dict[str, float] = {}
    for unit in units:
        by_method[unit["method"]] = round(by_method.get(unit["method"], 0.0) + unit["rank_s"], 1)
    return {"load_s_per_worker": [w.get("load_s") for w in workers],
            "rank_s_total": round(sum(u["rank_s"] for u in units), 1), "rank_s_by_method": by_method,
            "measure_s_total": round(sum(u["measure_s"] for u in units), 1),
            "measure_s_per_point": round(sum(u["measure_s"] for u in units) / max(1, sum(u["n_points"] for u in units)), 2)}


def _per_point(data: Path, home: Path, out: Path) -> dict:
    """The same sweep as one ``sweep_point`` job per point (two at a time), as earlier versions ran it."""
    env = {**os.environ, "ALIGNSCOPE_HOME": str(home)}
    script = f"""
import json, sys, time
from alignscope.data.preferences import load_preferences
from alignscope.jobs import JobStore
from alignscope.scaling.sweep import SweepConfig, prepare_sweep, point_dir_name
data = load_preferences({str(data)!r})
config = SweepConfig(methods={METHODS.split(',')!r}, seeds=[0, 1, 2])
out = prepare_sweep(data, config, {str(out)!r}, overwrite=True)
store = JobStore()
started = time.monotonic()
ids = [store.add("sweep_point", {{"data": data.spec(), "sweep_dir": str(out), "point": p, "sweep": config.to_dict()}},
                 run_dir=out / "points" / point_dir_name(p), workers=2, overwrite=True).id for p in config.points()]
from alignscope.jobs import get_executor
get_executor("local").start(store)
failed = [j for j in ids if store.wait(j, timeout=24 * 3600).status != "succeeded"]
print(json.dumps({{"wall_s": round(time.monotonic() - started, 1), "n_points": len(ids), "failed": len(failed)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"the per-point sweep failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["s_per_point"] = round(result["wall_s"] / max(1, result["n_points"]), 2)
    return result


def _warm(data: Path, home: Path) -> float:
    """Embed with the sweep's encoders once (what every measured run then finds cached)."""
    env = {**os.environ, "ALIGNSCOPE_HOME": str(home)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import sys; from alignscope.data.preferences import load_preferences; "
                    "from alignscope.embed.encoders import embed; d = load_preferences(sys.argv[1]); "
                    "[embed(d, e, progress=False) for e in ('static', 'lsa')]", str(data)], env=env, check=True)
    return round(time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=4000)
    parser.add_argument("--full", action="store_true", help="also all 61,952 pairs, from an empty home and cached")
    parser.add_argument("--ray", action="store_true", help="also the shared engine on a local Ray instance")
    parser.add_argument("--skip-per-point", action="store_true")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return 0
    from alignscope.data.preferences import load_preferences

    work = Path(tempfile.mkdtemp(prefix="alignscope-bench-sweep-"))
    models = {"ALIGNSCOPE_MODELS": os.environ.get("ALIGNSCOPE_MODELS", str(work / "models"))}
    os.environ.update(models)
    full = load_preferences(str(DATA))
    rows = np.sort(np.random.default_rng(0).choice(len(full), size=min(args.sample, len(full)), replace=False))
    sample = work / f"alpaca_sample{len(rows)}.parquet"
    full.frame.iloc[rows].reset_index(drop=True).to_parquet(sample, index=False)
    figures: dict = {"sample_pairs": int(len(rows)), "methods": METHODS, "seeds": 3}
    home = work / "home"
    figures["warm_s"] = _warm(sample, home)
    figures["shared"] = _sweep(sample, home, work / "shared", "--workers", "2")
    if not args.skip_per_point:
        figures["per_point"] = _per_point(sample, home, work / "per_point")
        figures["shared_vs_per_point"] = round(figures["per_point"]["wall_s"] / figures["shared"]["wall_s"], 2)
    figures["shared_1_worker"] = _sweep(sample, home, work / "shared1", "--workers", "1")
    if args.ray:
        os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"})
        figures["ray_2_workers"] = _sweep(sample, home, work / "ray", "--workers", "2", "--executor", "ray")
        figures["ray_vs_local"] = round(figures["ray_2_workers"]["wall_s"] / figures["shared"]["wall_s"], 2)
    if args.full:
        cold = work / "home-full"
        figures["full_pairs"] = len(full)
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "from alignscope.embed.encoders import static_folder; static_folder()"],
                       env={**os.environ, "ALIGNSCOPE_HOME": str(cold)}, check=True)
        figures["full_distill_s"] = round(time.monotonic() - started, 1)
        figures["full_empty_home"] = _sweep(DATA, cold, work / "full-cold", "--workers", "2")
        figures["full_cached"] = _sweep(DATA, cold, work / "full-warm", "--workers", "2")
        figures["meets_15_min_empty"] = figures["full_empty_home"]["wall_s"] <= 15 * 60
        figures["meets_5_min_cached"] = figures["full_cached"]["wall_s"] <= 5 * 60
    write_result("sweep", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
