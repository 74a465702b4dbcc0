"""SamS experiments (issues 5 and 21): label noise, and the cost of scheduling.

    python -m benchmarks.bench_sams noise    [--model tiny] [--seeds 0,1,2] [--noise 0.2] [--max-steps 16]
                                             [--max-length 64] [--batch-size 8] [--eval-max-pairs 100]
                                             [--methods dpo,sams-mean,sams-pair,random50] [--warmup-steps 2]
                                             [--budget-s 1500] [--fresh]
    python -m benchmarks.bench_sams overhead [--model smollm2-135m] [--max-steps 6] [--repeats 2]

``noise``: the HH harmless pairs of ../shared/data (skipped with a message when absent), one seeded
80/20 split (the held-out labels are never flipped). For each noise level and seed, the same flipped
training pairs (``label_noise_seed`` = seed) and the same training seed for every method: plain DPO,
DPO + SamS with the flip-invariant ``mean`` context (the reference code's), DPO + SamS with the
``pair`` context (and ``diff`` when asked), and DPO on a random 50 % of each batch (SamS with
``selection=random``: same ρ, same code path, no learned choice). Same steps and batch, the
product's default learning rate and SamS defaults otherwise (reward ``ranked``, standardised
contexts), ``--warmup-steps`` full-batch steps first. Reported:

* held-out implicit-reward preference accuracy (bootstrap 95 % interval per run; mean ± 95 %
  t-interval over seeds per method; each SamS variant − DPO and − random-50 %, paired by seed);
  when DPO's mean accuracy is ≤ 0.55 the summary says the run cannot answer whether SamS helps;
* for every SamS run, AFTER warm-up, the selection rate of flipped vs clean pairs (pooled over
  seeds: Wilson 95 % intervals, and flipped − clean with a bootstrap interval over steps);
* the ORACLE: in every rewarded step, the top ⌈ρ·n⌉ pairs by the logged sample reward r_S (and by
  the full reward r): if even the oracle picks flipped pairs as often as clean ones, the reward
  itself does not separate them and no scheduler trained on it can.

Results are written after every run (``results/sams_label_noise.json``), so a run cut short still
reports what it finished; ``--budget-s`` stops starting new runs after that many seconds. Finished
runs are reused (``--fresh`` to redo). Runs live under ``$ALIGNSCOPE_HOME/bench_sams``.

``overhead``: identical DPO and DPO + SamS runs (same data, seed, steps; no evaluation), each in its
own process, alternated ``--repeats`` times: training wall time and peak resident memory (VmHWM),
and their ratios. Writes ``results/sams_overhead.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SHARED_DATA, write_result

DATA_FILE = SHARED_DATA / "hh_harmless_test.jsonl.gz"
METHODS = {"dpo": {"method": "dpo"},
           "sams-mean": {"method": "dpo-sams", "sams_ratio": 0.5, "sams_selection": "topk", "sams_context": "mean"},
           "sams-pair": {"method": "dpo-sams", "sams_ratio": 0.5, "sams_selection": "topk", "sams_context": "pair"},
           "sams-diff": {"method": "dpo-sams", "sams_ratio": 0.5, "sams_selection": "topk", "sams_context": "diff"},
           "random50": {"method": "dpo-sams", "sams_ratio": 0.5, "sams_selection": "random"}}
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def _floats(text: str) -> list[float]:
    return [float(s) for s in text.split(",") if s.strip()]


def _mean_ci(values: list[float]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": round(mean, 4), "ci95": None, "n": n}
    half = T95.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": round(mean, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)], "n": n}


def _wilson(selected: int, seen: int, z: float = 1.96) -> dict[str, Any]:
    """Selection rate with its Wilson 95 % interval (binomial, one draw per pair and step)."""
    if seen == 0:
        return {"seen": 0, "selected": 0, "rate": None, "ci95": None}
    p = selected / seen
    centre = (p + z * z / (2 * seen)) / (1 + z * z / seen)
    half = z * math.sqrt(p * (1 - p) / seen + z * z / (4 * seen * seen)) / (1 + z * z / seen)
    return {"seen": seen, "selected": selected, "rate": round(p, 4),
            "ci95": [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]}


def _sams_defaults() -> dict[str, Any]:
    """The SamS options a method above leaves at the product's defaults."""
    from alignscope.train.sams_config import SamsConfig

    return {k: v for k, v in SamsConfig().to_dict().items() if k != "seed"}


def _home() -> Path:
    from alignscope import settings

    return settings.home() / "bench_sams"


# ------------------------------------------------------------------------------------ noise
def _step_counts(run_dir: Path) -> list[dict[str, int]] | None:
    """Per rewarded step after warm-up, counts of flipped/clean pairs in the batch, selected by
    SamS, and selected by the oracles (top-k by logged sample reward, top-k by full reward)."""
    import pandas as pd

    from alignscope.files import read_jsonl

    table = pd.read_parquet(run_dir / "selection.parquet")
    if "flipped" not in table.columns:
        return None
    flipped = set(table.loc[table["flipped"].astype(bool), "index"].tolist())
    out = []
    for record in read_jsonl(run_dir / "sams.jsonl"):
        if record.get("warmup"):
            continue
        batch = record["batch"]
        chosen = set(record["selected"])
        k = len(record["selected"])
        row = {"step": record["step"], "n_flipped": 0, "n_clean": 0, "sel_flipped": 0, "sel_clean": 0}
        for i in batch:
            group = "flipped" if i in flipped else "clean"
            row[f"n_{group}"] += 1
            row[f"sel_{group}"] += i in chosen
        for name, key in (("oracle_rs", "sample_rewards"), ("oracle_r", "rewards")):
            values = record.get(key)
            row[f"{name}_flipped"] = row[f"{name}_clean"] = None
            if values:
                top = sorted(range(len(batch)), key=lambda j: -values[j])[:k]
                row[f"{name}_flipped"] = sum(batch[j] in flipped for j in top)
                row[f"{name}_clean"] = k - row[f"{name}_flipped"]
        out.append(row)
    return out


def _rates(steps: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    rows = [s for s in steps if s.get(f"{prefix}_flipped") is not None]
    flipped = _wilson(sum(s[f"{prefix}_flipped"] for s in rows), sum(s["n_flipped"] for s in rows))
    clean = _wilson(sum(s[f"{prefix}_clean"] for s in rows), sum(s["n_clean"] for s in rows))
    result = {"flipped": flipped, "clean": clean, "steps": len(rows)}
    if flipped["seen"] and clean["seen"]:
        result["flipped_minus_clean"] = round(flipped["rate"] - clean["rate"], 4)
        rng = random.Random(0)
        diffs = []
        for _ in range(2000):  # bootstrap over steps (the pairs of one batch share a decision)
            sample = [rows[rng.randrange(len(rows))] for _ in rows]
            nf, nc = sum(s["n_flipped"] for s in sample), sum(s["n_clean"] for s in sample)
            if nf and nc:
                diffs.append(sum(s[f"{prefix}_flipped"] for s in sample) / nf - sum(s[f"{prefix}_clean"] for s in sample) / nc)
        diffs.sort()
        if diffs:
            result["flipped_minus_clean_ci95"] = [round(diffs[int(0.025 * len(diffs))], 4),
                                                  round(diffs[int(0.975 * len(diffs)) - 1], 4)]
    return result


def _summary(runs: list[dict[str, Any]], noises: list[float], methods: list[str], seeds: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for noise in noises:
        block: dict[str, Any] = {"accuracy": {}, "paired_differences": {}, "selection_after_warmup": {}}
        here = [r for r in runs if r["noise"] == noise]
        for name in methods:
            block["accuracy"][name] = _mean_ci([r["accuracy"] for r in here if r["method"] == name])
        by_seed = {(r["method"], r["seed"]): r["accuracy"] for r in here}
        for name in methods:
            if not name.startswith("sams"):
                continue
            for other in ("dpo", "random50"):
                diffs = [by_seed[(name, s)] - by_seed[(other, s)] for s in seeds
                         if (name, s) in by_seed and (other, s) in by_seed]
                if diffs:
                    block["paired_differences"][f"{name}_minus_{other}"] = _mean_ci(diffs)
        for name in methods:
            steps = [s for r in here if r["method"] == name for s in (r.get("steps_after_warmup") or [])]
            if steps and noise > 0:
                block["selection_after_warmup"][name] = {"scheduler": _rates(steps, "sel"),
                                                         "oracle_top_k_by_sample_reward": _rates(steps, "oracle_rs"),
                                                         "oracle_top_k_by_reward": _rates(steps, "oracle_r")}
        dpo = block["accuracy"].get("dpo", {}).get("mean")
        block["can_answer"] = bool(dpo is not None and dpo > 0.55)
        if not block["can_answer"]:
            block["verdict"] = (f"DPO's held-out accuracy is {dpo} (≤ 0.55): the policy barely learned, so this run "
                                "cannot answer whether SamS helps under label noise; only the selection rates "
                                "and the oracle say something (whether the reward separates flipped pairs).")
        summary[f"noise_{noise:g}"] = block
    return summary


def run_noise(args) -> None:
    data_file = Path(args.data) if args.data else DATA_FILE
    if not data_file.exists():
        print(f"skipped: {data_file} is absent (../shared/data is not part of a user's checkout; --data PATH)")
        return
    from alignscope.data.preferences import load_preferences
    from alignscope.files import write_json
    from alignscope.train.config import train_config
    from alignscope.train.trainer import train

    data = load_preferences(str(data_file))
    seeds = [int(s) for s in _floats(args.seeds)]
    noises = _floats(args.noise)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"bench_sams: error: unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    runs: list[dict[str, Any]] = []
    started_all = time.perf_counter()
    skipped: list[str] = []

    def write(final: bool) -> None:
        write_result("sams_label_noise", {
            "data": str(data_file.name), "model": args.model, "steps": args.max_steps, "batch_size": args.batch_size,
            "max_length": args.max_length, "eval_max_pairs": args.eval_max_pairs, "seeds": seeds, "noise": noises,
            "warmup_steps": args.warmup_steps, "complete": final and not skipped, "not_run": skipped,
            "split": "one seeded 80/20 split of all pairs (split_seed 0); held-out labels never flipped",
            "methods": {m: METHODS[m] for m in methods}, "sams_defaults": _sams_defaults(),
            "summary": _summary(runs, noises, methods, seeds), "runs": runs,
            "wall_s_total": round(time.perf_counter() - started_all, 1),
            "wall_s_of_runs": round(sum(r["wall_s"] for r in runs), 1),  # also when runs were reused
            "paper": "Pythia-2.8B on HH, 20 % flipped: DPO ~58 vs DPO+SamS ~64 (a 2.8B model trained to convergence; "
                     "these runs are small models for a few steps)",
        })

    for noise in noises:
        for seed in seeds:
            for name in methods:
                fields = METHODS[name]
                key = (f"{args.model}_n{noise:g}_{name}_s{seed}_steps{args.max_steps}_len{args.max_length}"
                       f"_b{args.batch_size}_w{args.warmup_steps}")
                if args.budget_s and time.perf_counter() - started_all > args.budget_s:
                    skipped.append(key)
                    continue
                run_dir = _home() / key
                record = run_dir / "bench_record.json"
                if record.exists() and not args.fresh:
                    runs.append(json.loads(record.read_text()))
                    print(f"reused {key}: accuracy {runs[-1]['accuracy']:.3f}", flush=True)
                    continue
                sams = {k: v for k, v in fields.items() if k != "method"}
                if fields["method"] == "dpo-sams":
                    sams["sams_warmup_steps"] = args.warmup_steps
                config = train_config(fields["method"], model=args.model, max_steps=args.max_steps,
                                      max_length=args.max_length, batch_size=args.batch_size, seed=seed, split_seed=0,
                                      test_fraction=0.2, label_noise=noise, label_noise_seed=seed,
                                      eval_max_pairs=args.eval_max_pairs, **sams)
                started = time.perf_counter()
                summary = train(data, config=config, run_dir=run_dir, data_source=str(data_file), progress_bar=False)
                ev = summary["eval"]
                result = {"method": name, "noise": noise, "seed": seed, "accuracy": round(ev["accuracy"], 4),
                          "accuracy_ci95": [round(x, 4) for x in ev["accuracy_ci95"]],
                          "margin_mean": round(ev["margin_mean"], 6), "n_eval_pairs": ev["n_pairs"],
                          "steps": summary["training"]["steps"], "s_per_step": summary["training"]["s_per_step"],
                          "train_runtime_s": summary["training"]["train_runtime_s"],
                          "wall_s": round(time.perf_counter() - started, 1),
                          "steps_after_warmup": _step_counts(run_dir) if fields["method"] == "dpo-sams" else None}
                write_json(record, result)
                runs.append(result)
                print(f"{key}: accuracy {result['accuracy']:.3f} {result['accuracy_ci95']} "
                      f"({result['wall_s']} s, {result['s_per_step']} s/step)", flush=True)
                write(final=False)
    write(final=True)


# --------------------------------------------------------------------------------- overhead
_CHILD = """
import json, sys, time
from alignscope.train.config import train_config
from alignscope.train.trainer import train
fields = json.loads(sys.argv[1])
method = fields.pop("method")
config = train_config(method, **fields)
summary = train(sys.argv[2], config=config, run_dir=sys.argv[3], progress_bar=False)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print("RESULT " + json.dumps({"train_runtime_s": summary["training"]["train_runtime_s"],
                              "s_per_step": summary["training"]["s_per_step"], "peak_rss_mib": round(hwm / 1024, 1)}))
"""


def run_overhead(args) -> None:
    source = str(DATA_FILE) if DATA_FILE.exists() else "demo:400"
    common = dict(model=args.model, max_steps=args.max_steps, max_length=args.max_length, batch_size=args.batch_size,
                  seed=0, test_fraction=0.0)
    results: dict[str, list[dict[str, Any]]] = {"dpo": [], "dpo-sams": []}
    for repeat in range(args.repeats):
        for name in ("dpo", "dpo-sams"):
            fields = {"method": name, **common}
            run_dir = _home() / f"overhead_{args.model}_{name}_{repeat}"
            done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(fields), source, str(run_dir)],
                                  capture_output=True, text=True)
            line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
            if done.returncode != 0 or line is None:
                raise SystemExit(f"{name} run failed:\n{done.stderr[-3000:]}")
            results[name].append(json.loads(line[len("RESULT "):]))
            print(f"{name} repeat {repeat}: {results[name][-1]}", flush=True)
    time_dpo = statistics.median(r["train_runtime_s"] for r in results["dpo"])
    time_sams = statistics.median(r["train_runtime_s"] for r in results["dpo-sams"])
    mem_dpo = max(r["peak_rss_mib"] for r in results["dpo"])
    mem_sams = max(r["peak_rss_mib"] for r in results["dpo-sams"])
    write_result(f"sams_overhead", {
        "data": source, **common, "repeats": args.repeats, "runs": results,
        "median_train_runtime_s": {"dpo": time_dpo, "dpo-sams": time_sams},
        "time_ratio_sams_over_dpo": round(time_sams / time_dpo, 4),
        "peak_rss_mib": {"dpo": mem_dpo, "dpo-sams": mem_sams},
        "memory_ratio_sams_over_dpo": round(mem_sams / mem_dpo, 4),
        "note": "peak RSS of the whole process (CPU: model, optimizer, activations, scheduler); the paper's "
                "-18 % is GPU memory on 8xA100",
    }, suffix="" if args.model == "smollm2-135m" else f"_{args.model}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sams", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    noise = sub.add_parser("noise")
    noise.add_argument("--model", default="tiny")
    noise.add_argument("--data", default=None, help=f"the HH pairs (default {DATA_FILE})")
    noise.add_argument("--seeds", default="0,1,2")
    noise.add_argument("--noise", default="0.2")
    noise.add_argument("--max-steps", type=int, default=16)
    noise.add_argument("--max-length", type=int, default=64)
    noise.add_argument("--batch-size", type=int, default=8)
    noise.add_argument("--eval-max-pairs", type=int, default=100)
    noise.add_argument("--methods", default="dpo,sams-mean,sams-pair,random50")
    noise.add_argument("--warmup-steps", type=int, default=2)
    noise.add_argument("--budget-s", type=float, default=0.0, help="start no new run after this many seconds")
    noise.add_argument("--fresh", action="store_true")
    overhead = sub.add_parser("overhead")
    overhead.add_argument("--model", default="smollm2-135m")
    overhead.add_argument("--max-steps", type=int, default=6)
    overhead.add_argument("--max-length", type=int, default=128)
    overhead.add_argument("--batch-size", type=int, default=4)
    overhead.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    run_noise(args) if args.what == "noise" else run_overhead(args)


if __name__ == "__main__":
    main()
