"""A real-sized data set on one laptop, step by step as a user runs it: ``python -m
benchmarks.bench_scale [--pairs 250000] [--data FILE] [--keep]``.

Builds (or reuses, with ``--data``) the 250,000-pair set of ``benchmarks.make_large_set`` and runs,
in a fresh alignscope home, each step as its own ``alignscope`` command: load and validate
(``data info``), the static embedding (``embed``), the audit (``audit``), an ISA selection of 10 %
(``select``) and one probe evaluation of it (``eval-probe``). Each step's wall time and the peak
resident memory of its process are recorded; the targets are 15 minutes in all and 8 GiB at the
peak. The obvious alternative in the same run: the same steps on the 61,952 shared pairs, so the
ratio shows how the cost grows with size. Figures: ``benchmarks/results/scale.json``. The static
model's one-time distillation is done before the clock starts (it is a set-up step) and reported
apart.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_DATA, write_result

TARGET_S = 15 * 60
TARGET_RSS_GIB = 8.0


def _run(args: list[str], env: dict[str, str]) -> dict:
    """One ``alignscope`` command in a child process: wall seconds and the child's peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "alignscope.cli", *args], capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        raise SystemExit(f"alignscope {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return {"command": "alignscope " + " ".join(args), "wall_s": round(wall, 1),
            # ru_maxrss of children is the largest so far: a step that peaked lower reads as the earlier max
            "peak_rss_gib": round(max(peak, before) / 2**20, 2), "stdout_tail": done.stdout[-400:]}


def steps(data: Path, work: Path, env: dict[str, str]) -> dict:
    out = {}
    out["load"] = _run(["data", "info", str(data), "--json"], env)
    out["embed_static"] = _run(["embed", str(data), "--encoder", "static", "--out", str(work / "emb.npy"),
                                "--force", "--json"], env)
    out["audit"] = _run(["audit", str(data), "--encoder", "static", "--out", str(work / "audit.parquet"),
                         "--force", "--json"], env)
    out["select_isa"] = _run(["select", str(data), "--method", "isa", "--encoder", "static", "--fraction", "0.1",
                              "--out", str(work / "isa.parquet"), "--force", "--json"], env)
    out["eval_probe"] = _run(["eval-probe", str(data), "--selection", str(work / "isa.parquet"), "--eval-encoder",
                              "static", "--json"], env)
    out["total_s"] = round(sum(step["wall_s"] for step in out.values() if isinstance(step, dict)), 1)
    out["peak_rss_gib"] = max(step["peak_rss_gib"] for step in out.values() if isinstance(step, dict))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=250_000)
    parser.add_argument("--data", help="an existing large file (default: build it with benchmarks.make_large_set)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="alignscope-scale-"))
    env = {**os.environ, "ALIGNSCOPE_HOME": str(work / "home"), "ALIGNSCOPE_DATA_ROOT": "/"}
    large = Path(args.data) if args.data else work / f"pairs-{args.pairs}.jsonl.gz"
    if not args.data:
        from benchmarks.make_large_set import main as make

        make(["--pairs", str(args.pairs), "--out", str(large)])
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "from alignscope.embed.encoders import static_folder; static_folder('cpu')"],
                   env=env, check=True)
    distill_s = round(time.monotonic() - started, 1)
    figures = {"pairs": args.pairs, "distill_s": distill_s, "target_s": TARGET_S, "target_rss_gib": TARGET_RSS_GIB}
    alpaca = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
    if alpaca.exists():  # one home: the data sets share only the distilled model and the measured rates
        (work / "alpaca").mkdir()
        figures["alpaca_61952"] = steps(alpaca, work / "alpaca", env)
    (work / "large").mkdir()
    figures["large"] = steps(large, work / "large", env)
    figures["meets_time"] = figures["large"]["total_s"] <= TARGET_S
    figures["meets_memory"] = figures["large"]["peak_rss_gib"] <= TARGET_RSS_GIB
    if "alpaca_61952" in figures:
        figures["ratio_large_vs_alpaca"] = round(figures["large"]["total_s"] / figures["alpaca_61952"]["total_s"], 2)
    write_result("scale", figures)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
