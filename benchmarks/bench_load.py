"""Concurrent users on one app server (issues 9 and 19): ``--sessions`` simultaneous sessions on the
AlpacaEval pairs (61,952 pairs, 123,904 completions), each opening the Data page, the Select page,
moving the subset slider ``--moves`` times (checking that "Pairs kept" follows), opening the Map
page and going back to Data. Loopback only, bounded (every session ends after its plan).

    python -m benchmarks.bench_load [--sessions 20] [--moves 5] [--think 2-5] [--data demo:3000]

``--think LOW-HIGH``: each user pauses LOW–HIGH seconds (uniform, seeded) before every interaction
after the first, as a demo audience reading the page does; without it every user clicks again as
soon as the page is back (the worst case). Pauses are not part of the timings.

Sessions speak Streamlit's own websocket protocol (:mod:`benchmarks.streamlit_client`): the server
does exactly the work a browser would make it do, without 20 browsers competing for the same
cores. A warm-up session runs first (the first visitor computes the cached ISA fit and map) and is
reported apart. The server's resident memory (RSS of the server process and its children, psutil)
is sampled every 0.5 s: before, peak during and after the sessions. Needs the embedding of the data
that the pages use in ``$ALIGNSCOPE_HOME`` (``python -m benchmarks.bench_pages`` computes the
static one). Targets (issue 19): with think time p95 <= 1.5 s; without, p95 reported (<= 6 s); 50
sessions without errors. Writes ``results/load_<data>_<sessions>_<think|nothink>.json``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time

from benchmarks.common import SHARED_DATA, start_app, write_result
from benchmarks.streamlit_client import load, summary

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


def server_rss_mib(pid: int) -> float:
    """Resident memory of the server process and all its children (MiB)."""
    import psutil

    try:
        process = psutil.Process(pid)
        processes = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / 2**20, 1)


class MemorySampler(threading.Thread):
    """Samples :func:`server_rss_mib` every ``every_s`` seconds until stopped; keeps the peak."""

    def __init__(self, pid: int, every_s: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak, self.samples = pid, every_s, 0.0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, server_rss_mib(self.pid))
            self.samples += 1
            self._stop_event.wait(self.every_s)

    def stop(self) -> float:
        self._stop_event.set()
        self.join(timeout=10)
        return self.peak


def _think(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        bounds = (1.0, 0.0)  # refused below
    if not 0 <= bounds[0] <= bounds[1]:
        raise SystemExit("--think: LOW-HIGH seconds with 0 <= LOW <= HIGH, e.g. 2-5")
    return bounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_load")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--think", help="pause LOW-HIGH seconds before each interaction, e.g. 2-5")
    parser.add_argument("--data", help="a data spec instead of the AlpacaEval pairs (e.g. demo:3000)")
    args = parser.parse_args(argv)
    think = _think(args.think)
    if args.data is None and not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return
    data, root = (args.data, os.getcwd()) if args.data else (str(DATA), str(SHARED_DATA))
    app, url, start_s = start_app("--data", data, "--data-root", root)
    try:
        warm = summary(asyncio.run(load(url, 1, 1, seed=999, timeout_s=900)))
        print(f"warm-up session: {warm['all']} errors {warm['errors']}", flush=True)
        rss_before = server_rss_mib(app.pid)
        load_average_before = os.getloadavg()
        sampler = MemorySampler(app.pid)
        sampler.start()
        started = time.perf_counter()
        result = summary(asyncio.run(load(url, args.sessions, args.moves, timeout_s=600, think=think)))
        wall = time.perf_counter() - started
        rss_peak = sampler.stop()
        time.sleep(2)
        rss_after = server_rss_mib(app.pid)
        load_average_after = os.getloadavg()
    finally:
        os.killpg(app.pid, 15)
        app.wait(timeout=60)
    p95 = result["all"].get("p95_s")
    interactions = result["all"].get("n", 0)
    if think is not None:
        target, met = "p95 <= 1.5 s, no errors", p95 is not None and p95 <= 1.5
    elif args.sessions >= 50:
        target, met = "no errors, memory reported", True
    else:
        target, met = "p95 reported, <= 6 s, no errors", p95 is not None and p95 <= 6.0
    met = bool(met and not result["errors"])
    name = f"load_{'alpaca' if args.data is None else args.data.split(':')[0]}_{args.sessions}_" + \
        ("think" if think else "nothink")
    write_result(name, {"data": os.path.basename(data), "sessions": args.sessions, "moves_per_session": args.moves,
                        "think_s": list(think) if think else None,
                        "server_start_s": round(start_s, 2), "warm_up": warm, **result, "wall_s": round(wall, 1),
                        "interactions_per_s": round(interactions / wall, 2) if wall else None,
                        "server_rss_mib": {"before": rss_before, "peak": rss_peak, "after": rss_after,
                                           "samples": sampler.samples},
                        "load_average_before": [round(x, 2) for x in load_average_before],
                        "load_average_after": [round(x, 2) for x in load_average_after],
                        "target": target, "met": met})


if __name__ == "__main__":
    main()
