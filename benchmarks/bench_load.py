"""Concurrent users on one app server (issue 9): ``--sessions`` simultaneous sessions on the
AlpacaEval pairs (61,952 pairs, 123,904 completions), each opening the Data page, the Select page,
moving the subset slider ``--moves`` times (checking that "Points kept" follows), opening the Map
page and going back to Data. Loopback only, bounded (every session ends after its plan).

    python -m benchmarks.bench_load [--sessions 20] [--moves 5] [--data demo:3000]

Sessions speak Streamlit's own websocket protocol (:mod:`benchmarks.streamlit_client`): the server
does exactly the work a browser would make it do, without 20 browsers competing for the same
cores. A warm-up session runs first (the first visitor computes the cached ISA fit and map) and is
reported apart. Needs the MiniLM embeddings of the data in ``$ALIGNSCOPE_HOME`` (the embed job of
``python -m benchmarks.bench_app_alpaca``). Target: no errors, p95 < 2 s. Writes
``results/load_alpaca.json`` (``load_<name>.json`` for other data).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time

from benchmarks.common import SHARED_DATA, start_app, write_result
from benchmarks.streamlit_client import load, summary

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_load")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--data", help="a data spec instead of the AlpacaEval pairs (e.g. demo:3000)")
    args = parser.parse_args(argv)
    if args.data is None and not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return
    data, root = (args.data, os.getcwd()) if args.data else (str(DATA), str(SHARED_DATA))
    app, url, start_s = start_app("--data", data, "--data-root", root)
    try:
        warm = summary(asyncio.run(load(url, 1, 1, seed=999, timeout_s=900)))
        print(f"warm-up session: {warm['all']} errors {warm['errors']}", flush=True)
        load_average_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = summary(asyncio.run(load(url, args.sessions, args.moves, timeout_s=600)))
        wall = time.perf_counter() - started
    finally:
        os.killpg(app.pid, 15)
        app.wait(timeout=60)
    p95 = result["all"].get("p95_s")
    name = "load_alpaca" if args.data is None else f"load_{args.data.split(':')[0]}"
    write_result(name, {"data": os.path.basename(data), "sessions": args.sessions, "moves_per_session": args.moves,
                        "server_start_s": round(start_s, 2), "warm_up": warm, **result, "wall_s": round(wall, 1),
                        "load_average_1min_before": round(load_average_before, 2),
                        "target": "no errors and p95 < 2 s",
                        "met": bool(not result["errors"] and p95 is not None and p95 < 2.0)})


if __name__ == "__main__":
    main()
